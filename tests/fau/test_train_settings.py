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


def test_vlfau_backbone_lr_scale_and_warmup_options():
    from fau.models import build_model
    from fau.train import cosine_lr, make_optimizer
    from shared.training import set_lr

    config = load_run_config("vlfau_tiny", CONFIG_DIR, ["train.backbone_lr_scale=0.1", "train.warmup_epochs=1"])
    settings = TrainSettings.from_config(config)
    model = build_model("vlfau", {**config["model"], "dataset": "bp4d"}, num_aus=12)
    optimizer = make_optimizer(model, settings)
    set_lr(optimizer, 1e-3)
    backbone = {id(p) for p in model.backbone.parameters()}
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert all(rates[i] == pytest.approx(1e-4) for i in backbone)
    assert all(r == pytest.approx(1e-3) for i, r in rates.items() if i not in backbone)
    assert len(backbone) < len(rates)
    assert cosine_lr(1.0, 0, 100, warmup=10) == pytest.approx(0.1)
    assert cosine_lr(1.0, 9, 100, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(1.0, 50, 100, warmup=10) == pytest.approx(0.5)


def test_warmup_needs_the_cosine_schedule():
    with pytest.raises(UserError, match="warmup_epochs"):
        TrainSettings.from_config(load_run_config("algrnet_tiny", CONFIG_DIR, ["train.warmup_epochs=1"]))
