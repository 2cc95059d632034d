"""`retrieval evaluate-sims`: table, exact JSON keys, ensembles, one-line errors, hard subset."""

import json

import numpy as np
import pytest

from retrieval.cli import main
from retrieval.evaluation.ensemble import save_sims
from retrieval.evaluation.metrics import METRIC_KEYS, evaluate_sims


def test_single_matrix_prints_table_and_writes_exact_keys(tmp_path, capsys):
    sims = np.random.default_rng(0).standard_normal((8, 40)).astype(np.float32)
    save_sims(tmp_path / "s.npy", sims)
    assert main(["evaluate-sims", str(tmp_path / "s.npy"), "--protocol", "full", "--json", str(tmp_path / "m.json")]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert tuple(record) == METRIC_KEYS
    assert record == evaluate_sims(sims)
    out = capsys.readouterr().out
    assert "R@1" in out and "rSum" in out


def test_several_files_are_averaged(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 8, 40)).astype(np.float32)
    save_sims(tmp_path / "a.npy", a)
    save_sims(tmp_path / "b.npy", b)
    args = ["evaluate-sims", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--protocol", "full", "--json", str(tmp_path / "m.json")]
    assert main(args) == 0
    assert json.loads((tmp_path / "m.json").read_text()) == evaluate_sims((a + b) / 2)


def test_errors_are_one_line_exit_2(tmp_path, capsys):
    save_sims(tmp_path / "a.npy", np.zeros((8, 40)))
    save_sims(tmp_path / "b.npy", np.zeros((9, 45)))
    assert main(["evaluate-sims", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--protocol", "full"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("retrieval: error:") and "b.npy" in err and "\n" not in err
    assert main(["evaluate-sims", str(tmp_path / "a.npy"), "--protocol", "f30k"]) == 2
    assert "f30k needs 1000 images" in capsys.readouterr().err
    assert main(["evaluate-sims", str(tmp_path / "missing.npy"), "--protocol", "full"]) == 2


def test_hard_subset_option(tmp_path, capsys):
    sims = np.random.default_rng(2).standard_normal((8, 40)).astype(np.float32)
    save_sims(tmp_path / "s.npy", sims)
    (tmp_path / "hard.json").write_text(json.dumps({"variants": ["base", "colour_swap", "direction_swap", "both"],
                                                    "groups": [{"images": [0, 3, 5, 6], "pair": [0, 1]}]}))
    args = ["evaluate-sims", str(tmp_path / "s.npy"), "--protocol", "full", "--hard", str(tmp_path / "hard.json"),
            "--json", str(tmp_path / "m.json")]
    assert main(args) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["hard"]["n_images"] == 4 and tuple(record["hard"]["subset"]) == METRIC_KEYS
    assert "within-group R@1" in capsys.readouterr().out


def test_bad_hard_file_is_a_one_line_error(tmp_path, capsys):
    save_sims(tmp_path / "s.npy", np.zeros((8, 40), np.float32))
    (tmp_path / "hard.json").write_text("{}")
    assert main(["evaluate-sims", str(tmp_path / "s.npy"), "--protocol", "full", "--hard", str(tmp_path / "hard.json")]) == 2
    assert "hard.json: not a hard-subset file" in capsys.readouterr().err
    (tmp_path / "far.json").write_text(json.dumps({"groups": [{"images": [0, 1, 2, 30]}]}))
    assert main(["evaluate-sims", str(tmp_path / "s.npy"), "--protocol", "full", "--hard", str(tmp_path / "far.json")]) == 2
    assert "image 30" in capsys.readouterr().err


def test_collapsed_matrix_scores_zero_not_600(tmp_path, capsys):
    save_sims(tmp_path / "zeros.npy", np.zeros((100, 500), np.float32))  # a collapsed model
    assert main(["evaluate-sims", str(tmp_path / "zeros.npy"), "--protocol", "full", "--json", str(tmp_path / "m.json")]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["rsum"] == 0.0 and record["i2t_r10"] <= 100 * 10 * 5 / 500 and record["t2i_r10"] <= 100 * 10 / 100
    assert "rSum 0.00" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["all-nan", "one-inf"])
def test_non_finite_file_is_one_stderr_line_naming_it(tmp_path, capsys, where):
    sims = np.random.default_rng(3).standard_normal((100, 500)).astype(np.float32)
    if where == "all-nan":
        sims[:] = np.nan
    else:
        sims[7, 36] = np.inf  # a positive of image 7
    np.save(tmp_path / "bad.npy", sims)
    save_sims(tmp_path / "good.npy", np.zeros((100, 500), np.float32))
    for files in (["bad.npy"], ["good.npy", "bad.npy"]):  # alone, and inside an ensemble
        json_out = tmp_path / "m.json"
        assert main(["evaluate-sims", *[str(tmp_path / f) for f in files], "--protocol", "full", "--json", str(json_out)]) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("retrieval: error: ") and str(tmp_path / "bad.npy") in lines[0]
        assert ("nan" in lines[0]) if where == "all-nan" else ("inf at row 7, column 36" in lines[0])
        assert "good.npy" not in lines[0] and not json_out.exists() and "rSum" not in captured.out
