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


def test_grouped_ranks_equal_the_kernel_in_both_directions():
    from shared.metrics.ranking import grouped_ranks, positive_ranks

    rng = np.random.default_rng(4)
    for n, group, dtype, block in ((7, 5, np.float64, 3), (13, 3, np.float32, 1), (10, 5, np.float16, None), (6, 1, np.int16, 4)):
        sims = rng.integers(0, 4, (n, group * n)).astype(dtype)  # four values: ties everywhere
        rows, cols = grouped_ranks(sims, group, block_rows=block)
        assert (rows == positive_ranks(sims, np.arange(n * group).reshape(n, group))).all()
        assert (cols == positive_ranks(sims.T, np.arange(n * group) // group)).all()
    constant = np.zeros((4, 20))
    rows, cols = grouped_ranks(constant, 5)
    assert (rows == 15).all() and (cols == 3).all()  # a tie is a miss: every negative counts
    with pytest.raises(ValueError, match="N x 5N"):
        grouped_ranks(np.zeros((4, 19)), 5)


def test_float64_file_is_scored_in_float64(tmp_path):
    n = 20
    sims = np.random.default_rng(5).standard_normal((n, 5 * n))
    sims[3, 15] = 0.7  # image 3's best caption ...
    sims[3, 40] = 0.7 - 1e-12  # ... and a negative just below it: a hit in float64, a tie (miss) in float32
    sims[3, 16:20] = -5.0
    np.save(tmp_path / "s.npy", sims)
    assert main(["evaluate-sims", str(tmp_path / "s.npy"), "--protocol", "full", "--json", str(tmp_path / "m.json")]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record == evaluate_sims(sims) and record != evaluate_sims(sims.astype(np.float32))


def test_folds_and_ensembles_stream_to_the_same_record(tmp_path, monkeypatch):
    from retrieval.evaluation import metrics as metrics_module
    from retrieval.evaluation.ensemble import average_sims
    from retrieval.evaluation.metrics import EvalProtocol, evaluate_protocol

    small_1k = EvalProtocol("coco1k", 10, n_folds=5)  # the COCO-1K fold logic on a 10 x 50 matrix
    monkeypatch.setitem(metrics_module.PROTOCOLS, "coco1k", small_1k)
    rng = np.random.default_rng(6)
    a, b, c = rng.standard_normal((3, 10, 50))
    for name, matrix in (("a", a), ("b", b.astype(np.float32)), ("c", c)):
        np.save(tmp_path / f"{name}.npy", matrix)
    files = [str(tmp_path / f"{name}.npy") for name in "abc"]
    for chosen in (files[:1], files):
        assert main(["evaluate-sims", *chosen, "--protocol", "coco1k", "--json", str(tmp_path / "m.json")]) == 0
        expected = evaluate_protocol(np.load(chosen[0]) if len(chosen) == 1 else average_sims(chosen), small_1k)
        assert json.loads((tmp_path / "m.json").read_text()) == expected


def test_an_ensemble_whose_float32_mean_overflows_is_one_line(tmp_path, capsys):
    big = np.full((4, 20), 3e38)
    np.save(tmp_path / "a.npy", big)
    np.save(tmp_path / "b.npy", big)
    assert main(["evaluate-sims", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--protocol", "full"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "float32 average overflows" in err and "a.npy + " in err
