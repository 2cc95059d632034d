"""`MODELS`: the one table of retrieval models, each registered with its packaged configs per dataset.

``@MODELS.register("smfea", configs={"tiny": "smfea_tiny", "f30k": "smfea_f30k", "coco": "smfea_coco"})``
on a model class; `retrieval train/info`, the default run, the benchmarks and the tests ask `MODELS` for
a model's class and config (``MODELS.load_config("smfea", None)`` is the tiny config, ``"f30k"`` the
paper one).
"""

from __future__ import annotations

from pathlib import Path

from shared.registry import ModelRegistry

#: the packaged YAML configs (``retrieval/configs/<model>_<dataset>.yaml``)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

MODELS: ModelRegistry = ModelRegistry("retrieval model", config_dir=CONFIG_DIR)
