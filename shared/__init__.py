"""Thin base shared by the `fau` and `retrieval` task packages.

Only what both tasks need lives here: device/AMP/seeding, checkpoint I/O, YAML configs,
name registries, training utilities, distributed helpers, graph/attention layers and metrics.
This package imports neither `fau` nor `retrieval`.
"""

from shared.version import __version__

__all__ = ["__version__"]
