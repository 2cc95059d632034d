"""`retrieval evaluate` of a pairwise model under torchrun (2 CPU ranks, gloo) gives the matrix of one
process, and a tile journal lets a crashed evaluation continue (retrieval.evaluation.tiles); `index build` shares its image chunks out the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.cli import main
from retrieval.evaluation.checkpoint import evaluate_checkpoint
from retrieval.synth.generate import generate
from retrieval.train import CONFIG_DIR, train
from shared.config import load_run_config

TILE_MB = "0.05"  # a tiny budget, so the 12 x 60 test matrix is cut into many tiles


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    torch.set_num_threads(1)
    generate(root / "scenes", n_train=32, n_dev=12, n_test=12, seed=4, progress=False)
    ckpt = train("hire_t2i", root / "scenes", load_run_config("hire_t2i_tiny", CONFIG_DIR,
                                                              ["train.epochs=1", "train.batch_size=16"]),
                 root / "run", device="cpu", show_progress=False)
    single = root / "single.npy"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(root / "scenes"), "--split", "test",
                 "--device", "cpu", "--tile-mb", TILE_MB, "--save-sims", str(single)]) == 0
    return {"root": root, "ckpt": ckpt, "single": np.load(single)}


def _args(run, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--checkpoint", str(run["ckpt"]), "--data", str(run["root"] / "scenes"), "--split", "test",
            "--device", "cpu", "--tile-mb", TILE_MB, "--save-sims", str(out), *extra]


def test_two_ranks_give_the_single_process_matrix(run, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    out, journal = tmp_path / "ddp.npy", tmp_path / "journal"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "retrieval",
                             *_args(run, out, "--journal", str(journal))],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(out), run["single"])
    assert run["single"].shape == (12, 60) and not journal.exists()  # removed once the matrix is complete
    assert result.stdout.count("rsum") <= 1  # one report, from rank 0


def test_a_crashed_evaluation_continues_from_its_journal(run, tmp_path, monkeypatch):
    from retrieval.models import hire

    journal, calls = tmp_path / "journal", []
    cls = next(c for c in vars(hire).values() if isinstance(c, type) and hasattr(c, "forward_sim")
               and c.__module__ == hire.__name__)
    real = cls.forward_sim

    def crashing(self, images, texts):
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        calls.append(1)
        return real(self, images, texts)

    monkeypatch.setattr(cls, "forward_sim", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate_checkpoint(run["ckpt"], run["root"] / "scenes", "test", device="cpu", progress=False,
                            journal=journal, tile_mb=float(TILE_MB))
    tiles = sorted(journal.glob("i*_t*.npy"))
    assert len(tiles) == 3
    np.save(tiles[0], np.full_like(np.load(tiles[0]), 7.0))  # a marked tile shows that it is reused, not rescored
    monkeypatch.setattr(cls, "forward_sim", real)
    out = tmp_path / "resumed.npy"
    assert main(_args(run, out, "--journal", str(journal))) == 0
    resumed = np.load(out)
    marked = resumed == 7.0
    assert marked.any() and not (run["single"] == 7.0).any()
    np.testing.assert_array_equal(resumed[~marked], run["single"][~marked])
    assert not journal.exists()


def test_a_journal_of_another_evaluation_is_refused(run, tmp_path, capsys):
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "manifest.json").write_text('{"split": "dev"}')
    assert main(_args(run, tmp_path / "x.npy", "--journal", str(journal))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds tiles of another evaluation" in err[0] and str(journal) in err[0]
    assert not (tmp_path / "x.npy").exists()


def test_two_ranks_build_the_index_of_one_process(run, tmp_path):
    """`torchrun --nproc_per_node 2 -m retrieval index build` shares the image chunks out over the ranks
    (rank 0 writes) and gives the vectors and items of a one-process build."""
    from retrieval.search.index import Index

    ckpt = train("vsepp", run["root"] / "scenes", load_run_config("vsepp_tiny", CONFIG_DIR,
                                                                         ["train.epochs=1", "train.batch_size=16"]),
                        tmp_path / "vsepp", device="cpu", show_progress=False)
    args = ["index", "build", "--checkpoint", str(ckpt), "--data", str(run["root"] / "scenes"), "--quiet",
            "--device", "cpu", "--chunk-size", "3"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "retrieval", *args,
                             "--out", str(tmp_path / "two")], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = Index.load(tmp_path / "one"), Index.load(tmp_path / "two")
    assert one.count == two.count == 12
    np.testing.assert_array_equal(np.asarray(one.vectors), np.asarray(two.vectors))
    assert one.items == two.items
    assert not (tmp_path / "two" / ".partial").exists()
