"""Two CPU processes under torchrun (gloo) train like one process with the same global batch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from shared.distributed import DistInfo, all_gather_concat, init_distributed

TOY = Path(__file__).with_name("ddp_toy.py")


def _run(args, out):
    result = subprocess.run([*args, str(TOY), str(out)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_process_ddp_equals_single_process(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    ddp = _run([str(torchrun), "--standalone", "--nproc_per_node", "2"], tmp_path / "ddp.json")
    single = _run([sys.executable], tmp_path / "single.json")
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    rank0, rank1 = (np.array(p) for p in ddp["params"])
    np.testing.assert_array_equal(rank0, rank1)
    np.testing.assert_allclose(rank0, np.array(single["params"][0]), rtol=1e-5, atol=1e-6)
    assert ddp["uneven"] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    assert ddp["gathered"] == [1.0, 1.0, 2.0, 2.0]
    # rank 0's rows appear in both ranks' losses: the gradient is that of the sum of all ranks'
    # losses, 2 ranks × d((rank+1)·x)/dx = 2 for rank 0
    assert ddp["probe_grad"] == [2.0, 2.0]


def test_single_process_fallback(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo(device=info.device) and info.is_main and not info.enabled
    assert all_gather_concat(np.zeros(1)) is not None
