"""`MODELS`: the one table of FAU models, each registered with its packaged configs per dataset.

``@MODELS.register("algrnet", configs={"tiny": "algrnet_tiny", "bp4d": "algrnet_bp4d", ...})`` on a
model class; `fau train/eval/info`, the default run and predict ask `MODELS` for a model's class and
for its config (``MODELS.load_config("algrnet", None)`` is the tiny config, ``"bp4d"`` the paper one).
"""

from __future__ import annotations

from pathlib import Path

from shared.registry import ModelRegistry

#: the packaged YAML configs (``fau/configs/<model>_<dataset>.yaml``)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

MODELS: ModelRegistry = ModelRegistry("fau model", config_dir=CONFIG_DIR)
