"""`fau train` / `fau eval` end to end on a tiny SynFACS set: resume, determinism, init-from, DDP."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fau.cli import main
from fau.evaluation.checkpoint import evaluate_checkpoint
from fau.evaluation.report import aggregate, format_report
from fau.models import MODELS, load_model
from fau.train import train
from shared.checkpoint import load_checkpoint, load_meta
from shared.errors import UserError

FAST = ["train.epochs=2", "train.batch_size=8", "train.eval_batch_size=16"]


def _config(model, extra=()):
    return MODELS.load_config(model, "tiny", [*FAST, *extra])


def _weights(path):
    tensors, _ = load_checkpoint(path)
    return tensors


@pytest.mark.parametrize("model", ["algrnet", "mgrrnet"])
def test_train_then_eval_writes_checkpoint_metrics_and_report(prepared, tmp_path, model):
    best = train(model, prepared, "part3", _config(model), tmp_path / "run", device="cpu", show_progress=False)
    _, meta = load_checkpoint(best)
    assert meta["model"] == model and meta["fold"] == "part3" and len(meta["labels"]) == 15
    assert meta["config"]["model"]["dataset"] == "synfacs"  # set from the prepared AU set
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and "val_f1" in lines[0] and "loss_align" in lines[0]
    # the best checkpoint is the epoch with the highest validation macro F1, its scores in the sidecar
    assert meta["selection"]["score"] == max(line["val_f1"] for line in lines) == meta["val"]["macro"]["f1"]
    assert meta["epoch"] == max(range(2), key=lambda e: lines[e]["val_f1"])
    report = evaluate_checkpoint(best, prepared, split="test", device="cpu")
    assert report["synthetic"] and report["frames"] == 24
    assert set(report["scores"]) == {*meta["labels"], "macro"}
    assert 0.0 <= report["scores"]["macro"]["f1"] <= 1.0
    table = format_report(report)
    assert "AU12" in table and "macro" in table
    loaded, _ = load_model(best)
    assert sum(p.numel() for p in loaded.parameters()) > 0


def test_resume_after_interruption_matches_uninterrupted_run(prepared, tmp_path):
    config = _config("mgrrnet")
    train("mgrrnet", prepared, "part3", config, tmp_path / "straight", device="cpu", show_progress=False)
    train("mgrrnet", prepared, "part3", config, tmp_path / "resumed", device="cpu", show_progress=False,
          stop_after_epoch=0)
    assert len((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()) == 1
    train("mgrrnet", prepared, "part3", config, tmp_path / "resumed", device="cpu", show_progress=False)
    straight, resumed = _weights(tmp_path / "straight" / "last"), _weights(tmp_path / "resumed" / "last")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_same_seed_same_model_and_init_from(prepared, tmp_path):
    config = _config("algrnet", ["train.epochs=1"])
    first = train("algrnet", prepared, "part3", config, tmp_path / "a", device="cpu", show_progress=False)
    second = train("algrnet", prepared, "part3", config, tmp_path / "b", device="cpu", show_progress=False)
    a, b = _weights(first), _weights(second)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # DISFA-from-BP4D style initialisation: every matching tensor is copied before training
    init = train("algrnet", prepared, "part3", _config("algrnet", ["train.epochs=1", "train.lr=0.0"]),
                 tmp_path / "c", device="cpu", show_progress=False, init_from=first)
    c = _weights(init)
    moved = [k for k in a if not k.endswith("num_batches_tracked") and "running" not in k and not torch.equal(a[k], c[k])]
    assert moved == []


def test_bad_inputs_are_one_line_errors(prepared, tmp_path, capsys):
    assert main(["train", "--model", "algrnet", "--data", str(prepared), "--config", "algrnet_tiny",
                 "--out", str(tmp_path / "x"), "train.epoch=3"]) == 2
    assert "unknown config key 'train.epoch'" in capsys.readouterr().err
    assert main(["train", "--model", "nope", "--data", str(prepared), "--config", "algrnet_tiny",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--model 'nope': unknown fau model (known: algrnet, mgrrnet, vlfau)" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.safetensors"), "--data", str(prepared)]) == 2
    assert "missing" in capsys.readouterr().err
    with pytest.raises(UserError, match="no such fold"):
        train("algrnet", prepared, "part9", _config("algrnet"), tmp_path / "y", device="cpu")


def test_aggregate_three_folds_and_cli(prepared, tmp_path, capsys):
    reports = []
    for fold in ("part1", "part2", "part3"):
        best = train("algrnet", prepared, fold, _config("algrnet", ["train.epochs=1"]), tmp_path / fold,
                     device="cpu", show_progress=False)
        assert main(["eval", "--checkpoint", str(best), "--data", str(prepared), "--json", str(tmp_path / fold / "eval.json")]) == 0
        reports.append(json.loads((tmp_path / fold / "eval.json").read_text()))
    summary = aggregate(reports)
    assert summary["folds"] == ["part1", "part2", "part3"] and "paper_f1" not in summary  # synthetic data
    assert set(summary["scores"]["macro"]["f1"]) == {"mean", "std"}
    capsys.readouterr()
    assert main(["eval", "--aggregate", *(str(tmp_path / f) for f in ("part1", "part2", "part3"))]) == 0
    assert "±" in capsys.readouterr().out


def test_torchrun_two_processes(prepared, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "fau", "train", "--model", "mgrrnet",
         "--data", str(prepared), "--config", "mgrrnet_tiny", "--out", str(tmp_path / "ddp"), "--device", "cpu",
         "--no-progress", "train.epochs=1", "train.batch_size=8"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ddp" / "best.safetensors").is_file()
