import json

import pytest
import torch
from torch import nn

from shared.checkpoint import CheckpointError, checkpoint_paths, load_checkpoint, load_state_strict, save_checkpoint


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Linear(7, 3))


META = {"model": "toy", "config": {"hidden": 7}, "labels": ["AU1", "AU2", "AU4"], "fold": "part3"}


def test_round_trip_is_bit_exact_and_keeps_metadata(tmp_path):
    model = _model()
    model(torch.randn(4, 5))  # BatchNorm running stats become non-trivial
    weights = save_checkpoint(tmp_path / "best", model.state_dict(), META)
    tensors, meta = load_checkpoint(weights)
    for name, value in model.state_dict().items():
        assert tensors[name].dtype == value.dtype
        assert torch.equal(tensors[name], value), name
    assert meta["labels"] == META["labels"] and meta["fold"] == "part3" and "code_version" in meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "best.safetensors"]
    fresh = _model(seed=1)
    load_state_strict(fresh, tensors, weights)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_same_checkpoint_from_either_file_name(tmp_path):
    save_checkpoint(tmp_path / "run", {"w": torch.ones(2)}, META)
    assert checkpoint_paths(tmp_path / "run.json") == checkpoint_paths(tmp_path / "run.safetensors")


def test_truncated_weights_give_one_line_error_naming_the_file(tmp_path):
    weights = save_checkpoint(tmp_path / "best", _model().state_dict(), META)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(weights)
    message = str(err.value)
    assert "\n" not in message and str(weights) in message and "truncated" in message


def test_mismatch_names_first_bad_tensor(tmp_path):
    weights = save_checkpoint(tmp_path / "best", _model().state_dict(), META)
    tensors, _ = load_checkpoint(weights)
    other = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    with pytest.raises(CheckpointError, match=r"tensor '0.weight' has shape \(7, 5\), model expects \(8, 5\)"):
        load_state_strict(other, tensors, weights)
    with pytest.raises(CheckpointError, match="unexpected tensor"):
        load_state_strict(nn.Sequential(nn.Linear(5, 7)), tensors, weights)
    tensors.pop("2.bias")
    with pytest.raises(CheckpointError, match="'2.bias' missing"):
        load_state_strict(_model(), tensors, weights)


def test_bad_sidecar_and_missing_files(tmp_path):
    weights = save_checkpoint(tmp_path / "best", {"w": torch.zeros(1)}, META)
    sidecar = weights.with_suffix(".json")
    sidecar.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(weights)
    sidecar.write_text(json.dumps({"model": "toy"}))
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(weights)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_failed_save_leaves_no_partial_file(tmp_path):
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path / "x", {"w": torch.zeros(1)}, {"model": "toy"})
    assert list(tmp_path.iterdir()) == []


def test_a_pair_from_two_saves_refuses_to_load(tmp_path):
    """A crash between the weights' and the sidecar's rename leaves new weights beside an old sidecar."""
    import shutil

    from shared.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "a", {"w": torch.zeros(2)}, {"model": "toy", "config": {}})
    shutil.copy(tmp_path / "a.json", tmp_path / "old.json")
    save_checkpoint(tmp_path / "a", {"w": torch.ones(2)}, {"model": "toy", "config": {}})
    tensors, _ = load_checkpoint(tmp_path / "a")
    assert torch.equal(tensors["w"], torch.ones(2))
    shutil.copy(tmp_path / "old.json", tmp_path / "a.json")  # the state a crash between the renames leaves
    with pytest.raises(CheckpointError, match="written by different saves") as err:
        load_checkpoint(tmp_path / "a.safetensors")
    assert "\n" not in str(err.value)


def test_missing_files_are_named_for_what_is_missing(tmp_path):
    from shared.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    save_checkpoint(tmp_path / "b", {"w": torch.zeros(2)}, {"model": "toy", "config": {}})
    (tmp_path / "b.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_checkpoint(tmp_path / "b.json")
