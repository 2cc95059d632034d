"""`tools/gpu_check.py` on a machine without CUDA: it says so and exits 0 (the GPU path needs a GPU)."""

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_without_a_gpu_it_says_so_and_exits_0(monkeypatch, capsys):
    from tests.test_bench_scripts import load_tool

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_tool("gpu_check").main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gpu_check: no CUDA GPU here") and out.count("\n") == 1


def test_the_script_runs_from_the_command_line():
    if torch.cuda.is_available():  # a GPU machine runs the real check instead (minutes, not a unit test)
        return
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0 and "no CUDA GPU here" in done.stdout and done.stderr == ""
