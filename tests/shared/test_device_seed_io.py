import json

import numpy as np
import pytest
import torch

from shared.device import autocast, grad_scaler, inference_mode, resolve_device
from shared.errors import UserError
from shared.io import atomic_open, write_json, write_npy
from shared.seed import seed_everything


def test_device_resolution():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="not a device name"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")


def test_autocast_is_noop_on_cpu():
    x = torch.randn(3, 3)
    with autocast(torch.device("cpu")):
        assert (x @ x).dtype == torch.float32
    assert not grad_scaler(torch.device("cpu")).is_enabled()


def test_inference_mode_restores_training_flag():
    layer = torch.nn.Dropout(0.5)
    with inference_mode(layer) as m:
        assert not m.training
        assert not torch.is_grad_enabled()
    assert layer.training


def test_seed_everything_reproduces_all_generators():
    def draw():
        gen = seed_everything(123)
        return torch.rand(3), np.random.rand(3), torch.rand(2, generator=gen)

    a, b = draw(), draw()
    assert all(np.allclose(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def test_atomic_writes(tmp_path):
    write_json(tmp_path / "out" / "r.json", {"x": 1})
    assert json.loads((tmp_path / "out" / "r.json").read_text()) == {"x": 1}
    write_npy(tmp_path / "a.npy", np.arange(4))
    assert np.load(tmp_path / "a.npy").tolist() == [0, 1, 2, 3]
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "keep.txt") as handle:
            handle.write("half")
            raise RuntimeError("crash mid-write")
    assert (tmp_path / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "keep.txt", "out"]
