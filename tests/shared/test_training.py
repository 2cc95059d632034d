import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shared.checkpoint import CheckpointError, save_checkpoint
from shared.distributed import DistInfo, make_sampler, set_epoch
from shared.logging import MetricLogger, read_jsonl
from shared.schedule import LRSchedule, ScheduleConfig
from shared.training import progress, resume_training_state, save_training_state


def _train(run_dir, epochs, stop_after=None):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(24, 4), torch.randn(24, 1))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    start = resume_training_state(run_dir, model, optimizer)
    sampler = make_sampler(data, DistInfo(), shuffle=True, seed=7)
    loader = DataLoader(data, batch_size=5, sampler=sampler)
    schedule = LRSchedule(0.05, ScheduleConfig(type="step", step_epochs=1, gamma=0.5), epochs, len(loader))
    for epoch in range(start, epochs):
        set_epoch(sampler, epoch, seed=7)
        schedule.apply(optimizer, epoch, 0)
        for x, y in progress(loader, desc=f"epoch {epoch}", enabled=False):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        save_training_state(run_dir, model, optimizer, epoch, {"model": "toy", "config": {}})
        if stop_after is not None and epoch == stop_after:
            break
    return model


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    straight = _train(tmp_path / "a", epochs=3)
    _train(tmp_path / "b", epochs=3, stop_after=0)  # "killed" after epoch 0
    resumed = _train(tmp_path / "b", epochs=3)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_resume_rejects_plain_weights(tmp_path):
    model = nn.Linear(2, 2)
    save_checkpoint(tmp_path / "last", model.state_dict(), {"model": "toy", "config": {}})
    with pytest.raises(CheckpointError, match="not a training state"):
        resume_training_state(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_metric_logger_writes_jsonl(tmp_path):
    logger = MetricLogger(tmp_path)
    logger.log(1, "train", {"loss": torch.tensor(0.5), "lr": 0.01})
    logger.log(1, "val", {"f1": float("nan")})
    logger.close()
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert rows[0]["loss"] == 0.5 and rows[0]["split"] == "train" and rows[1]["f1"] == "nan"
