"""TrainSettings: a tiny config may switch its paper base's optimizer, leaving the other's keys null."""

import pytest

from fau.train import CONFIG_DIR, TrainSettings
from shared.config import load_run_config
from shared.errors import UserError


def test_tiny_configs_switch_to_adamw_over_an_sgd_base():
    settings = TrainSettings.from_config(load_run_config("algrnet_tiny", CONFIG_DIR, []))
    assert (settings.optimizer, settings.lr, settings.betas) == ("adamw", 1e-3, (0.9, 0.999))
    assert TrainSettings.from_config(load_run_config("algrnet_bp4d", CONFIG_DIR, [])).optimizer == "sgd"


@pytest.mark.parametrize("override, key", [("train.momentum=0.9", "momentum"), ("train.nesterov=true", "nesterov")])
def test_a_key_the_optimizer_ignores_must_be_null(override, key):
    with pytest.raises(UserError, match=f"train.{key}: not used by optimizer 'adamw'"):
        TrainSettings.from_config(load_run_config("mgrrnet_tiny", CONFIG_DIR, [override]))


def test_sgd_rejects_adam_betas():
    config = load_run_config("algrnet_bp4d", CONFIG_DIR, [])
    config["train"]["betas"] = [0.9, 0.99]
    with pytest.raises(UserError, match="train.betas: not used by optimizer 'sgd'"):
        TrainSettings.from_config(config)
