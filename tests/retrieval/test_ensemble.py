"""Saved similarity matrices and ensembles by averaging."""

import numpy as np
import pytest

from retrieval.evaluation.ensemble import average_sims, load_sims, save_sims
from shared.errors import UserError


def test_save_load_roundtrip_is_float32_and_atomic(tmp_path):
    sims = np.random.default_rng(0).standard_normal((3, 15))
    save_sims(tmp_path / "a.npy", sims)
    loaded = load_sims(tmp_path / "a.npy")
    assert loaded.dtype == np.float32 and loaded.shape == (3, 15)
    np.testing.assert_allclose(loaded, sims.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
    with pytest.raises(ValueError):
        save_sims(tmp_path / "b.npy", np.zeros(5))


def test_average_of_saved_matrices(tmp_path):
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal((4, 20)).astype(np.float32) for _ in range(3))
    for name, m in zip("abc", (a, b, c)):
        save_sims(tmp_path / f"{name}.npy", m)
    avg = average_sims([tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "c.npy"])
    np.testing.assert_allclose(avg, (a + b + c) / 3, rtol=1e-6)
    np.testing.assert_array_equal(average_sims([tmp_path / "a.npy"]), a)


def test_shape_mismatch_and_bad_files_are_one_line_errors(tmp_path):
    save_sims(tmp_path / "a.npy", np.zeros((4, 20)))
    save_sims(tmp_path / "b.npy", np.zeros((5, 25)))
    with pytest.raises(UserError) as err:
        average_sims([tmp_path / "a.npy", tmp_path / "b.npy"])
    msg = str(err.value)
    assert "b.npy" in msg and "(5, 25)" in msg and "(4, 20)" in msg and "\n" not in msg
    (tmp_path / "c.npy").write_text("not numpy")
    with pytest.raises(UserError, match="c.npy"):
        load_sims(tmp_path / "c.npy")
    np.save(tmp_path / "d.npy", np.zeros(3))
    with pytest.raises(UserError, match="2-D"):
        load_sims(tmp_path / "d.npy")
    with pytest.raises(UserError, match="no such"):
        load_sims(tmp_path / "missing.npy")
