"""The two training protocols of `fau train` (docs/fau.md, decision 'protocol'): the thesis's
(train on both training parts for the fixed epochs, last epoch scored on the test part) and ours
(best epoch on held-out training subjects)."""

import json

import numpy as np
import torch
import pytest

from fau.cli import main
from fau.data.table import load_prepared
from fau.evaluation.checkpoint import evaluate_checkpoint
from fau.evaluation.report import aggregate, format_report
from fau.models import MODELS
from fau.train import protocol_rows, train
from shared.checkpoint import load_checkpoint
from shared.errors import UserError

FAST = ["train.epochs=2", "train.batch_size=8", "train.eval_batch_size=16"]


def _lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_paper_protocol_uses_every_training_subject_and_reports_the_last_epoch(prepared, tmp_path):
    data = load_prepared(prepared)
    fold = data.fold("part3")
    assert fold["val"], "the fixture must have a validation carve-out for this test to mean anything"
    rows, selection = protocol_rows(data, "part3", "paper")
    assert selection is None
    trained = set(data.table["subject"].iloc[rows])
    assert trained == set(fold["train"]) | set(fold["val"])          # every subject of the two training parts
    assert trained.isdisjoint(fold["test"])

    config = MODELS.load_config("algrnet", "tiny", [*FAST, "train.protocol=paper", "train.threshold=fixed"])
    best = train("algrnet", prepared, "part3", config, tmp_path / "run", device="cpu", show_progress=False)
    weights, meta = load_checkpoint(best)
    last, _ = load_checkpoint(tmp_path / "run" / "last")
    assert meta["protocol"] == "paper" and meta["epoch"] == 1 and meta["selection"]["rule"] == "last epoch"
    assert all(np.array_equal(weights[k].numpy(), last[f"model/{k}"].numpy()) for k in weights)  # the model IS the last epoch
    assert all("val_f1" not in line for line in _lines(tmp_path / "run"))               # nothing selected on
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["protocol"] == "paper" and report["split"] == "test" and report["epoch"] == 1
    assert report["frames"] == len(data.indices("part3", "test"))
    assert report == json.loads(json.dumps(evaluate_checkpoint(best, prepared, device="cpu")))
    with pytest.raises(UserError, match="paper protocol trained .* on the validation subjects"):
        evaluate_checkpoint(best, prepared, split="val", device="cpu")
    assert "paper protocol" in format_report(report)
    # ALGRNet has a landmark branch: the Tab 3.6 mean error over the test frames with landmarks
    assert report["alignment"]["frames"] == report["frames"] and 0 < report["alignment"]["mean_error"] < 100
    assert "landmark mean error (Tab 3.6" in format_report(report)


def test_validated_protocol_is_unchanged_and_named(prepared, tmp_path):
    config = MODELS.load_config("algrnet", "tiny", FAST)
    assert config["train"]["protocol"] == "validated"
    data = load_prepared(prepared)
    rows, selection = protocol_rows(data, "part3", "validated")
    assert np.array_equal(rows, data.indices("part3", "train")) and np.array_equal(selection, data.indices("part3", "val"))
    best = train("algrnet", prepared, "part3", config, tmp_path / "run", device="cpu", show_progress=False)
    _, meta = load_checkpoint(best)
    lines = _lines(tmp_path / "run")
    assert meta["protocol"] == "validated" and meta["selection"]["score"] == max(line["val_f1"] for line in lines)
    assert not (tmp_path / "run" / "eval.json").exists()
    report = evaluate_checkpoint(best, prepared, device="cpu")
    assert report["protocol"] == "validated" and "validated protocol" in format_report(report)


def test_cli_flag_sets_the_protocol_and_aggregate_names_it(prepared, tmp_path, capsys):
    reports = []
    for fold in ("part1", "part2"):
        out = tmp_path / fold
        assert main(["train", "--model", "mgrrnet", "--data", str(prepared), "--fold", fold, "--out", str(out),
                     "--device", "cpu", "--no-progress", "--protocol", "paper", "train.epochs=1",
                     "train.batch_size=8"]) == 0
        reports.append(json.loads((out / "eval.json").read_text()))
    capsys.readouterr()
    assert main(["eval", "--aggregate", str(tmp_path / "part1"), str(tmp_path / "part2")]) == 0
    assert "paper protocol" in capsys.readouterr().out
    assert aggregate(reports)["protocol"] == "paper"
    mixed = [reports[0], {**reports[1], "protocol": "validated"}]
    with pytest.raises(UserError, match="mix protocols"):
        aggregate(mixed)
    assert main(["train", "--model", "mgrrnet", "--data", str(prepared), "--out", str(tmp_path / "x"),
                 "train.protocol=best"]) == 2
    assert "train.protocol" in capsys.readouterr().err


def test_disfa_paper_configs_require_a_bp4d_initialisation(prepared, tmp_path, capsys):
    for model in ("algrnet", "mgrrnet"):
        assert MODELS.load_config(model, "disfa")["train"]["requires_init"] is True
        assert MODELS.load_config(model, "bp4d")["train"]["requires_init"] is False
    assert MODELS.load_config("vlfau", "disfa")["train"]["requires_init"] is False
    assert main(["train", "--model", "mgrrnet", "--data", str(prepared), "--config", "mgrrnet_disfa",
                 "--out", str(tmp_path / "disfa"), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "--init-from BP4D_RUN/best.safetensors" in err[0] and "--init-from none" in err[0]
    assert not (tmp_path / "disfa").exists()
    required = MODELS.load_config("mgrrnet", "tiny", [*FAST, "train.epochs=1", "train.requires_init=true"])
    with pytest.raises(UserError, match="train.requires_init"):
        train("mgrrnet", prepared, "part3", required, tmp_path / "a", device="cpu", show_progress=False)
    scratch = train("mgrrnet", prepared, "part3", required, tmp_path / "b", device="cpu", show_progress=False,
                    init_from="none")
    algrnet = train("algrnet", prepared, "part3", MODELS.load_config("algrnet", "tiny", [*FAST, "train.epochs=1"]),
                    tmp_path / "c", device="cpu", show_progress=False)
    with pytest.raises(UserError, match="a 'algrnet' checkpoint, not 'mgrrnet'"):
        train("mgrrnet", prepared, "part3", required, tmp_path / "d", device="cpu", show_progress=False,
              init_from=algrnet)
    started = train("mgrrnet", prepared, "part3", {**required, "train": {**required["train"], "lr": 0.0}},
                    tmp_path / "e", device="cpu", show_progress=False, init_from=scratch)
    a, _ = load_checkpoint(scratch)
    b, _ = load_checkpoint(started)
    assert all(torch.equal(a[k], b[k]) for k in a if "running" not in k and "num_batches" not in k)
