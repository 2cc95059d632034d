"""`retrieval train` / `evaluate` end to end on a tiny SynScenes set: every model, resume, ensembles."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.cli import main
from retrieval.evaluation.checkpoint import evaluate_checkpoint, format_report
from retrieval.models import load_model
from retrieval.synth.generate import generate
from retrieval.models import CONFIG_DIR
from retrieval.train import train
from shared.checkpoint import load_checkpoint
from shared.config import load_run_config
from shared.errors import UserError

FAST = ["train.epochs=2", "train.batch_size=16"]
RUNS = [("vsepp", "vsepp_tiny"), ("vse_gpo", "vse_gpo_tiny"), ("smfea", "smfea_tiny"),
        ("3shnet", "shnet_tiny"), ("3shnet", "shnet_grid_tiny"), ("imc", "imc_tiny")]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("synscenes")
    generate(root, n_train=48, n_dev=16, n_test=24, seed=5, progress=False)
    assert main(["parse", "--data", str(root), "--quiet"]) == 0
    return root


def _config(name, extra=()):
    return load_run_config(name, CONFIG_DIR, [*FAST, *extra])


@pytest.mark.parametrize("model,config", RUNS)
def test_train_then_evaluate_every_model(scenes, tmp_path, model, config):
    best = train(model, scenes, _config(config), tmp_path / "run", device="cpu", show_progress=False)
    _, meta = load_checkpoint(best)
    assert meta["model"] == model and meta["dataset"] == "synscenes" and "dev" in meta
    assert (meta["vocab"] is None) == (meta["text_kind"] == "bert")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and "dev_rsum" in rows[0] and "loss_total" in rows[0]
    report = evaluate_checkpoint(best, scenes, "test", "full", "cpu", save=tmp_path / "sims.npy", progress=False)
    assert report["images"] == 24 and 0.0 <= report["metrics"]["rsum"] <= 600.0
    assert "hard" in report and report["hard"]["n_groups"] > 0
    assert np.load(tmp_path / "sims.npy").shape == (24, 120)
    assert "hard subset" in format_report(report)


def test_resume_after_interruption_matches_uninterrupted_run(scenes, tmp_path):
    config = _config("vsepp_tiny")
    train("vsepp", scenes, config, tmp_path / "straight", device="cpu", show_progress=False)
    train("vsepp", scenes, config, tmp_path / "resumed", device="cpu", show_progress=False, stop_after_epoch=0)
    train("vsepp", scenes, config, tmp_path / "resumed", device="cpu", show_progress=False)
    a, _ = load_checkpoint(tmp_path / "straight" / "last")
    b, _ = load_checkpoint(tmp_path / "resumed" / "last")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_alone_embeds_new_captions(scenes, tmp_path):
    best = train("smfea", scenes, _config("smfea_tiny", ["train.epochs=1"]), tmp_path / "run", device="cpu",
                 show_progress=False)
    model, meta, text = load_model(best)
    from retrieval.data.pairs import CaptionStream

    stream = CaptionStream(["a small red cube left of a blue sphere", "zzz unknownword"], text)
    with torch.inference_mode():
        emb = model.embed_texts(stream.collate([stream[0], stream[1]]))
    assert emb.shape[0] == 2 and torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)


def test_cli_evaluate_ensemble_and_init_from(scenes, tmp_path, capsys):
    first = train("3shnet", scenes, _config("shnet_tiny", ["train.epochs=1"]), tmp_path / "r", device="cpu",
                  show_progress=False)
    second = train("3shnet", scenes, _config("shnet_grid_tiny", ["train.epochs=1"]), tmp_path / "g", device="cpu",
                   show_progress=False, init_from=first)
    for ckpt, sims in ((first, "r.npy"), (second, "g.npy")):
        assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(scenes), "--save-sims",
                     str(tmp_path / sims), "--json", str(tmp_path / f"{sims}.json")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--ensemble", str(tmp_path / "r.npy"), str(tmp_path / "g.npy"), "--protocol", "full",
                 "--json", str(tmp_path / "ens.json")]) == 0
    ens = json.loads((tmp_path / "ens.json").read_text())
    mean = (np.load(tmp_path / "r.npy") + np.load(tmp_path / "g.npy")) / 2
    from retrieval.evaluation import evaluate_protocol

    assert ens["rsum"] == pytest.approx(evaluate_protocol(mean, "full")["rsum"])


def test_bad_inputs_are_one_line_errors(scenes, tmp_path, capsys):
    assert main(["train", "--model", "vsepp", "--data", str(scenes), "--config", "vsepp_tiny",
                 "--out", str(tmp_path / "x"), "train.lr_sched=1"]) == 2
    assert "unknown config key 'train.lr_sched'" in capsys.readouterr().err
    assert main(["train", "--model", "vsepp", "--data", str(tmp_path / "nowhere"), "--config", "vsepp_tiny",
                 "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(UserError, match="word_dim 300 .* data.word_vectors=PATH"):  # the shipped GloVe is 50-d
        train("vsepp", scenes, load_run_config("vsepp_f30k", CONFIG_DIR, ["train.epochs=1", "data.word_vectors=null"]),
              tmp_path / "y", device="cpu")


def test_torchrun_two_processes(scenes, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "retrieval", "train", "--model", "vsepp",
         "--data", str(scenes), "--config", "vsepp_tiny", "--out", str(tmp_path / "ddp"), "--device", "cpu",
         "--no-progress", "train.epochs=1", "train.batch_size=16"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ddp" / "best.safetensors").is_file()


def test_paper_row_only_for_real_datasets():
    from retrieval.evaluation.checkpoint import _dataset_family, paper_row

    meta = {"model": "3shnet", "config": {"model": {"variant": "grid"}}}
    assert _dataset_family("f30k") == "f30k" and _dataset_family("coco") == "coco" and _dataset_family("synscenes") is None
    assert paper_row("f30k", "f30k", meta)["rsum"] == pytest.approx(525.5)  # Tab 8.4, grid
    assert paper_row("coco", "coco1k", {"model": "smfea", "config": {"model": {}}})["i2t_r1"] == pytest.approx(75.1)
    assert paper_row(None, "full", meta) is None


class DevScores:
    """Stands in for `retrieval.evaluation.checkpoint.split_similarity`: the real matrix, replaced per call by `plan`."""

    def __init__(self, plan):
        from retrieval.evaluation import checkpoint as evaluate_module

        self.real, self.plan, self.calls = evaluate_module.split_similarity, list(plan), 0

    def __call__(self, *args, **kwargs):
        sims = self.real(*args, **kwargs)
        kind = self.plan[min(self.calls, len(self.plan) - 1)]
        self.calls += 1
        if kind == "collapsed":  # one score for every pair, up to float noise that happens to favour the positives
            flat = np.full_like(sims, 0.25)
            flat.reshape(len(sims), len(sims), -1)[np.arange(len(sims)), np.arange(len(sims))] += 1e-6
            return flat
        if kind == "nan":
            sims[2, 3] = np.nan
        return sims


def test_collapsed_epoch_is_logged_and_never_kept_as_best(scenes, tmp_path, monkeypatch, caplog, capsys):
    from retrieval.evaluation import checkpoint as evaluate_module

    monkeypatch.setattr(evaluate_module, "split_similarity", DevScores(["real", "collapsed"]))
    with caplog.at_level("WARNING", logger="shared.trainer"):
        best = train("vsepp", scenes, _config("vsepp_tiny"), tmp_path / "run", device="cpu", show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["dev_collapsed"] for r in rows] == [False, True]
    assert rows[1]["dev_rsum"] == 600.0 > rows[0]["dev_rsum"]  # the noise ranks perfectly, yet epoch 1 is not kept
    _, meta = load_checkpoint(best)
    assert meta["epoch"] == 0
    _, last = load_checkpoint(tmp_path / "run" / "last")
    assert last["epoch"] == 1
    assert any("epoch 2 is not selectable: the dev scores collapsed" in r.getMessage() for r in caplog.records)
    assert "collapsed" not in capsys.readouterr().out  # logged, not printed

    monkeypatch.setattr(evaluate_module, "split_similarity", DevScores(["collapsed"]))
    with pytest.raises(UserError, match="no epoch could be selected .*see metrics.jsonl"):
        train("vsepp", scenes, _config("vsepp_tiny"), tmp_path / "flat", device="cpu", show_progress=False)
    assert not (tmp_path / "flat" / "best.safetensors").exists()
    _, last = load_checkpoint(tmp_path / "flat" / "last")
    assert last["epoch"] == 1  # the training state is still saved, so a resume works

    # `retrieval evaluate` names the checkpoint and split when the matrix is not finite, and writes nothing
    monkeypatch.setattr(evaluate_module, "split_similarity", DevScores(["nan"]))
    assert main(["evaluate", "--checkpoint", str(best), "--data", str(scenes), "--split", "test",
                 "--save-sims", str(tmp_path / "s.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{best} on synscenes test" in err and "nan at row 2, column 3" in err
    assert not (tmp_path / "s.npy").exists()


def test_non_finite_dev_matrix_stops_training_naming_the_epoch(scenes, tmp_path, monkeypatch):
    from retrieval.evaluation import checkpoint as evaluate_module

    monkeypatch.setattr(evaluate_module, "split_similarity", DevScores(["real", "nan"]))
    with pytest.raises(UserError, match=r"^training epoch 2/2, dev split: the score matrix holds nan at row 2, column 3") as err:
        train("vsepp", scenes, _config("vsepp_tiny"), tmp_path / "run", device="cpu", show_progress=False)
    assert "\n" not in str(err.value)
    _, last = load_checkpoint(tmp_path / "run" / "last")
    assert last["epoch"] == 0  # the NaN epoch saved nothing; a resume restarts it
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
