"""Language side of VL-FAU: versioned FACS description templates and per-frame text targets."""
