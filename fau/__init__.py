"""Facial action unit recognition: face pipeline, AU regions, datasets, models, prediction.

Top-level conveniences are resolved lazily so `import fau` stays cheap::

    fau.au_centres(landmarks49, "bp4d")   # JAA-Net AU centres, (N, A, 2, 2)
    model = fau.load("runs/algrnet/best.safetensors")   # a `fau.predict.Predictor`
    result = model.predict("photo.jpg")                  # {"image": ..., "faces": [...]}
"""

from __future__ import annotations

from typing import Any

_LAZY = {"au_centres": "fau.aus", "attention_maps": "fau.aus", "gaussian_attention": "fau.aus",
         "load": "fau.predict", "Predictor": "fau.predict"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fau' has no attribute {name!r}")
