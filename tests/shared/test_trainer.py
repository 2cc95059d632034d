"""The shared training loop: learning, resuming, selection rules, non-finite losses, schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from shared.checkpoint import load_checkpoint, load_meta
from shared.distributed import DistInfo
from shared.errors import UserError
from shared.logging import read_jsonl
from shared.schedule import LRSchedule, OptimizerConfig, ScheduleConfig, make_optimizer, parameter_groups
from shared.seed import seed_everything
from shared.trainer import EpochEval, TrainConfig, TrainJob, fit


class Classifier(nn.Module):
    """Logistic regression with the trainer's loss hook."""

    def __init__(self, poison: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.poison = poison

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.linear(x).squeeze(1)}

    def training_losses(self, outputs, batch):
        loss = nn.functional.binary_cross_entropy_with_logits(outputs["logits"], batch[1])
        if self.poison:
            loss = loss * float("nan")
        return {"bce": loss, "total": loss}


def toy_data(n: int = 64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).float()
    return TensorDataset(x, y), x, y


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float(((model(x)["logits"] > 0).float() == y).float().mean())


def settings(epochs=4, **kw) -> TrainConfig:
    base = dict(optimizer="sgd", lr=0.5, weight_decay=0.0, momentum=0.0, nesterov=False,
                schedule=ScheduleConfig("step", step_epochs=2, gamma=0.5), epochs=epochs, batch_size=8)
    base.update(kw)
    return TrainConfig(**base)


def job(model, data, cfg, evaluate=None, **kw) -> TrainJob:
    return TrainJob(model=model, train_set=data, settings=cfg, config={"train": {}}, meta={"model": "toy", "config": {}},
                    model_input=lambda batch: batch[0], evaluate=evaluate, **kw)


def test_learns_above_chance_and_selects_best(tmp_path):
    data, x, y = toy_data()
    seed_everything(0)
    model = Classifier()
    before = accuracy(model, x, y)
    evaluate = lambda m, epoch: EpochEval(score=accuracy(m, x, y), log={"val_acc": accuracy(m, x, y)})
    best = fit(job(model, data, settings(), evaluate), tmp_path, DistInfo(), show_progress=False)
    after = accuracy(model, x, y)
    assert after >= 0.9 and after > before  # chance is about 0.5
    meta = load_meta(best)
    assert meta["selection"]["rule"] == "best evaluation score"
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert meta["selection"]["score"] == max(r["val_acc"] for r in records)


def test_resume_equals_uninterrupted(tmp_path):
    data, x, y = toy_data()
    runs = {}
    for name, stop in (("whole", None), ("split", 1)):
        seed_everything(0)
        model = Classifier()
        out = tmp_path / name
        fit(job(model, data, settings(), lambda m, e: EpochEval(accuracy(m, x, y), {})), out, DistInfo(),
            show_progress=False, stop_after_epoch=stop)
        if stop is not None:
            seed_everything(0)
            model = Classifier()
            fit(job(model, data, settings(), lambda m, e: EpochEval(accuracy(m, x, y), {})), out, DistInfo(),
                show_progress=False)
        runs[name] = {k: v.clone() for k, v in model.state_dict().items()}
    for key in runs["whole"]:
        assert torch.equal(runs["whole"][key], runs["split"][key])


def test_unselectable_epochs_are_never_best(tmp_path):
    data, x, y = toy_data()
    seed_everything(0)
    scores = iter([None, 0.7, None, 0.6])
    def evaluate(m, epoch):
        score = next(scores)
        return EpochEval(score, {}, reason="collapsed" if score is None else "")
    best = fit(job(Classifier(), data, settings(), evaluate), tmp_path, DistInfo(), show_progress=False)
    meta = load_meta(best)
    assert meta["epoch"] == 1 and meta["selection"]["score"] == 0.7
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert records[0]["not_selectable"] == "collapsed" and "not_selectable" not in records[1]


def test_all_epochs_unselectable_is_an_error(tmp_path):
    data, _, _ = toy_data()
    with pytest.raises(UserError, match="no epoch could be selected"):
        fit(job(Classifier(), data, settings(2), lambda m, e: EpochEval(None, {}, reason="collapsed")),
            tmp_path, DistInfo(), show_progress=False)
    assert not (tmp_path / "best.safetensors").exists()


def test_non_finite_loss_stops_with_one_line(tmp_path):
    data, _, _ = toy_data()
    with pytest.raises(UserError) as err:
        fit(job(Classifier(poison=True), data, settings()), tmp_path, DistInfo(), show_progress=False)
    message = str(err.value)
    assert "\n" not in message and "epoch 1 step 1" in message and "'bce'" in message
    assert not (tmp_path / "best.safetensors").exists()


def test_non_finite_selection_score_stops(tmp_path):
    data, _, _ = toy_data()
    with pytest.raises(UserError, match="epoch 1: selection score is nan"):
        fit(job(Classifier(), data, settings(), lambda m, e: EpochEval(float("nan"), {})), tmp_path, DistInfo(),
            show_progress=False)


def test_without_evaluation_the_last_epoch_is_kept(tmp_path):
    data, x, y = toy_data()
    seed_everything(0)
    model = Classifier()
    best = fit(job(model, data, settings(3)), tmp_path, DistInfo(), show_progress=False)
    tensors, meta = load_checkpoint(best)
    assert meta["epoch"] == 2 and meta["selection"]["rule"] == "last epoch"
    assert torch.equal(tensors["linear.weight"], model.linear.weight.detach())


def test_step_schedule_with_warmup_and_group_scales():
    cfg = ScheduleConfig("step", step_epochs=2, gamma=0.1, warmup_epochs=1)
    sched = LRSchedule(1.0, cfg, epochs=6, steps_per_epoch=4)
    assert [sched.lr(0, s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert sched.lr(1, 0) == 1.0 and math.isclose(sched.lr(2, 3), 0.1) and math.isclose(sched.lr(5, 0), 0.01)
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    opt = make_optimizer(model, OptimizerConfig("adamw", lr=1.0, weight_decay=0.0, lr_scales={"1": 0.1}))
    sched.apply(opt, 3, 0)
    assert [g["name"] for g in opt.param_groups] == ["default", "1"]
    assert [round(g["lr"], 6) for g in opt.param_groups] == [0.1, 0.01]


def test_cosine_schedule_with_warmup():
    sched = LRSchedule(2.0, ScheduleConfig("cosine", warmup_epochs=1), epochs=4, steps_per_epoch=2)
    assert sched.lr(0, 0) == 1.0 and sched.lr(0, 1) == 2.0
    assert math.isclose(sched.lr(2, 0), 2.0 * 0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert math.isclose(sched.lr(3, 1), 2.0 * 0.5 * (1 + math.cos(math.pi * 7 / 8)))


def test_parameter_groups_match_whole_names_only():
    model = nn.ModuleDict({"backbone": nn.Linear(2, 2), "backbone2": nn.Linear(2, 2)})
    groups = parameter_groups(model, {"backbone": 0.1})
    assert len(groups[0]["params"]) == 2 and len(groups[1]["params"]) == 2


def test_optimizer_keys_of_the_other_optimizer_are_refused():
    with pytest.raises(ValueError, match="momentum"):
        OptimizerConfig("adamw", lr=1.0, weight_decay=0.0, momentum=0.9)
    with pytest.raises(ValueError, match="needs momentum"):
        OptimizerConfig("sgd", lr=1.0, weight_decay=0.0)


def test_a_run_folder_belongs_to_one_run(tmp_path):
    data, x, y = toy_data()
    evaluate = lambda m, e: EpochEval(accuracy(m, x, y), {})
    first = job(Classifier(), data, settings(2), evaluate)
    first.meta["fold"] = "part1"
    fit(first, tmp_path, DistInfo(), show_progress=False)
    longer = job(Classifier(), data, settings(3), evaluate)  # more epochs: the same run, extended
    longer.meta["fold"] = "part1"
    fit(longer, tmp_path, DistInfo(), show_progress=False)
    assert load_meta(tmp_path / "last")["epoch"] == 2
    other = job(Classifier(), data, settings(3), evaluate)
    other.meta["fold"] = "part2"
    with pytest.raises(UserError, match="holds a run with fold 'part1', not 'part2'"):
        fit(other, tmp_path, DistInfo(), show_progress=False)
    changed = job(Classifier(), data, settings(3), evaluate)
    changed.meta["fold"] = "part1"
    changed.config = {"train": {"lr": 0.1}}
    with pytest.raises(UserError, match="config_sha256"):
        fit(changed, tmp_path, DistInfo(), show_progress=False)
