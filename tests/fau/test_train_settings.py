"""The ``train:`` / ``data:`` sections of the packaged configs, read by `fau.train.read_settings`.

Every packaged config uses the unified ``train:`` schema of `shared.trainer.TrainConfig`; a tiny
config may switch its paper base's optimizer, leaving the other optimizer's keys null.
"""

import pytest

from fau.models import MODELS, build_model
from fau.train import read_settings
from shared.errors import UserError
from shared.schedule import LRSchedule, make_optimizer


@pytest.mark.parametrize("model", MODELS.names())
@pytest.mark.parametrize("dataset", ["tiny", "bp4d", "disfa"])
def test_every_packaged_config_reads(model, dataset):
    settings, data = read_settings(MODELS.load_config(model, dataset))
    assert settings.epochs >= 1 and data.crop <= data.image_size


def test_paper_schedules_and_tiny_configs_that_switch_to_adamw_over_an_sgd_base():
    paper, _ = read_settings(MODELS.load_config("algrnet", "bp4d"))
    assert (paper.optimizer, paper.lr, paper.momentum, paper.nesterov) == ("sgd", 0.01, 0.9, True)
    assert (paper.schedule.type, paper.schedule.step_epochs, paper.schedule.gamma) == ("step", 2, 0.5)  # ×0.5 / 2 epochs
    tiny, _ = read_settings(MODELS.load_config("algrnet", "tiny"))
    assert (tiny.optimizer, tiny.lr, tiny.betas, tiny.momentum) == ("adamw", 1e-3, (0.9, 0.999), None)
    assert (tiny.schedule.step_epochs, tiny.schedule.gamma) == (4, 0.3)
    vlfau, data = read_settings(MODELS.load_config("vlfau", "bp4d"))
    assert (vlfau.optimizer, vlfau.schedule.type, vlfau.lr_scales) == ("adamw", "cosine", {"backbone": 1.0})
    assert (data.cutout_size, data.cutout_prob) == (56, 0.5)


@pytest.mark.parametrize("override, key", [("train.momentum=0.9", "momentum"), ("train.nesterov=true", "nesterov")])
def test_a_key_the_optimizer_ignores_must_be_null(override, key):
    with pytest.raises(UserError, match=f"config train: {key}: not used by optimizer 'adamw'"):
        read_settings(MODELS.load_config("mgrrnet", "tiny", [override]))


def test_sgd_rejects_adam_betas_and_bad_values_name_their_key():
    with pytest.raises(UserError, match="betas: not used by optimizer 'sgd'"):
        read_settings(MODELS.load_config("algrnet", "bp4d", ["train.betas=[0.9, 0.99]"]))
    with pytest.raises(UserError, match=r"train.schedule.gamma: 2.0 outside \[0.0, 1.0\]"):
        read_settings(MODELS.load_config("algrnet", "bp4d", ["train.schedule.gamma=2.0"]))
    with pytest.raises(UserError, match="config data: crop 80 is larger than image_size 60"):
        read_settings(MODELS.load_config("algrnet", "tiny", ["data.image_size=60"]))
    config = MODELS.load_config("algrnet", "bp4d")
    config["train"]["lr_step"] = 2     # the old key: an error naming it, never a silent default
    with pytest.raises(UserError, match="unknown key.*'lr_step'"):
        read_settings(config)


def test_vlfau_backbone_lr_scale_and_warmup_options():
    config = MODELS.load_config("vlfau", "tiny", ["train.lr_scales.backbone=0.1", "train.schedule.warmup_epochs=1"])
    settings, _ = read_settings(config)
    model = build_model("vlfau", {**config["model"], "dataset": "bp4d"}, num_aus=12)
    optimizer = make_optimizer(model, settings)
    schedule = LRSchedule(1e-3, settings.schedule, epochs=settings.epochs, steps_per_epoch=10)
    schedule.apply(optimizer, 1, 0)          # past the one warm-up epoch
    backbone = {id(p) for p in model.backbone.parameters()}
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert all(rates[i] == pytest.approx(schedule.lr(1, 0) * 0.1) for i in backbone)
    assert all(r == pytest.approx(schedule.lr(1, 0)) for i, r in rates.items() if i not in backbone)
    assert 0 < len(backbone) < len(rates)
    assert schedule.lr(0, 0) == pytest.approx(1e-3 / 10)                       # linear warm-up
