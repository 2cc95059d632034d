"""Bad input to the `retrieval` commands, run through the CLI in-process: each case exits 2 with exactly
one stderr line that names the file or argument, no traceback, and every file of the workspace (a tiny
SynScenes, a trained checkpoint, an index, an evaluation JSON) byte-identical afterwards."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.cli import main
from retrieval.synth.generate import generate
from retrieval.train import CONFIG_DIR, train
from shared.checkpoint import save_checkpoint
from shared.config import load_run_config


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The workspace every case runs against (module docstring)."""
    ws = tmp_path_factory.mktemp("ws")
    torch.set_num_threads(1)
    generate(ws / "scenes", n_train=32, n_dev=10, n_test=10, seed=3, progress=False)
    ckpt = train("vsepp", ws / "scenes", load_run_config("vsepp_tiny", CONFIG_DIR, ["train.epochs=1", "train.batch_size=16"]),
                 ws / "run", device="cpu", show_progress=False)
    assert main(["index", "build", "--checkpoint", str(ckpt), "--data", str(ws / "scenes"), "--out", str(ws / "index"),
                 "--quiet", "--device", "cpu"]) == 0
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(ws / "scenes"), "--split", "test",
                 "--device", "cpu", "--json", str(ws / "eval.json")]) == 0
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    from safetensors.torch import load_file
    weights = load_file(str(ckpt))
    # a checkpoint of the other task, its sidecar written the way FAU training writes it
    save_checkpoint(ws / "fau", {"stem.conv.weight": torch.zeros(2, 2)},
                    {"model": "algrnet", "config": {"model": {}, "data": {"dataset": "bp4d"}}, "aus": [1, 2],
                     "dataset": "bp4d", "fold": "part1"})
    save_checkpoint(ws / "nodata", weights, {**meta, "config": {k: v for k, v in meta["config"].items() if k != "data"}})
    (ws / "orphan.safetensors").write_bytes(ckpt.read_bytes())
    np.save(ws / "ok.npy", np.eye(10, 50, dtype=np.float32))
    np.save(ws / "nan.npy", np.where(np.eye(10, 50) > 0, np.nan, 0.0).astype(np.float32))
    inf = np.eye(10, 50, dtype=np.float32)
    inf[:, 7] = np.inf
    np.save(ws / "inf.npy", inf)
    (ws / "empty.npy").write_bytes(b"")
    np.save(ws / "zero.npy", np.zeros((0, 0), dtype=np.float32))
    (ws / "text.npy").write_text("1 2 3\n")
    np.save(ws / "shape.npy", np.zeros((3, 4, 5), dtype=np.float32))
    (ws / "afile").write_text("a plain file\n")
    return ws


CKPT = "{ws}/run/best.safetensors"
#: (case id, argv with {ws} for the workspace, texts the one line must contain)
CASES = [
    ("evaluate-fau-checkpoint", ["evaluate", "--checkpoint", "{ws}/fau.safetensors", "--data", "{ws}/scenes"],
     ["fau.json", "algrnet"]),
    ("evaluate-sidecar-without-config-data", ["evaluate", "--checkpoint", "{ws}/nodata.safetensors", "--data", "{ws}/scenes"],
     ["nodata.json", "data"]),
    ("evaluate-weights-without-sidecar", ["evaluate", "--checkpoint", "{ws}/orphan.safetensors", "--data", "{ws}/scenes"],
     ["orphan"]),
    ("evaluate-json-into-a-file", ["evaluate", "--checkpoint", CKPT, "--data", "{ws}/scenes", "--json", "{ws}/afile/x.json"],
     ["afile"]),
    ("index-build-fau-checkpoint", ["index", "build", "--checkpoint", "{ws}/fau.safetensors", "--data", "{ws}/scenes",
                                    "--out", "{ws}/index2"], ["fau.json"]),
    ("index-build-onto-a-file", ["index", "build", "--checkpoint", CKPT, "--data", "{ws}/scenes", "--out", "{ws}/afile"],
     ["afile"]),
    ("search-missing-index", ["search", "--index", "{ws}/nope", "a red cube"], ["nope"]),
    ("search-rerank-fau-checkpoint", ["search", "--index", "{ws}/index", "a red cube", "--rerank", "{ws}/fau.safetensors"],
     ["fau.json"]),
    ("train-unknown-model", ["train", "--model", "nope", "--data", "{ws}/scenes", "--out", "{ws}/r1"], ["nope"]),
    ("train-unknown-config", ["train", "--model", "vsepp", "--config", "nope", "--data", "{ws}/scenes", "--out", "{ws}/r1"],
     ["nope"]),
    ("train-lr-nan", ["train", "--model", "vsepp", "--data", "{ws}/scenes", "--out", "{ws}/r1", "train.lr=.nan"], ["lr"]),
    ("train-unknown-key", ["train", "--model", "vsepp", "--data", "{ws}/scenes", "--out", "{ws}/r1", "train.lrr=0.1"],
     ["lrr"]),
    ("train-into-another-run", ["train", "--model", "smfea", "--data", "{ws}/scenes", "--out", "{ws}/run"], ["run"]),
    ("train-missing-data", ["train", "--model", "vsepp", "--data", "{ws}/nodata_dir", "--out", "{ws}/r1"], ["nodata_dir"]),
    ("evaluate-sims-nan", ["evaluate-sims", "{ws}/nan.npy", "--protocol", "full"], ["nan.npy"]),
    ("evaluate-sims-inf-column", ["evaluate-sims", "{ws}/inf.npy", "--protocol", "full"], ["inf.npy"]),
    ("evaluate-sims-empty-file", ["evaluate-sims", "{ws}/empty.npy", "--protocol", "full"], ["empty.npy"]),
    ("evaluate-sims-0x0", ["evaluate-sims", "{ws}/zero.npy", "--protocol", "full"], ["zero.npy"]),
    ("evaluate-sims-text", ["evaluate-sims", "{ws}/text.npy", "--protocol", "full"], ["text.npy"]),
    ("evaluate-sims-3d", ["evaluate-sims", "{ws}/shape.npy", "--protocol", "full"], ["shape.npy"]),
    ("evaluate-sims-json-into-a-file", ["evaluate-sims", "{ws}/ok.npy", "--protocol", "full", "--json", "{ws}/afile/m.json"],
     ["afile"]),
    ("synth-onto-a-file", ["synth", "--out", "{ws}/afile"], ["afile"]),
    ("parse-missing-data", ["parse", "--data", "{ws}/nodata_dir"], ["nodata_dir"]),
]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv,needles", [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input_is_one_line_exit_2_and_keeps_every_file(ws, capsys, argv, needles):
    before = _snapshot(ws)
    capsys.readouterr()
    code = main([part.format(ws=ws) for part in argv])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err[-2000:])
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert all(needle in lines[0] for needle in needles), lines[0]
    assert _snapshot(ws) == before
