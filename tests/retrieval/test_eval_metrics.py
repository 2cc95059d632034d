"""Retrieval metrics: hand-computed ranks, protocols, COCO-1K averaging and the rSum misprint."""

import math

import numpy as np
import pytest

from retrieval.evaluation.metrics import (
    COLLAPSE_RTOL, METRIC_KEYS, PROTOCOLS, EvalProtocol, auto_chunk, average_folds, evaluate_folds, evaluate_protocol,
    evaluate_sims, format_table, is_collapsed, mean_recall, protocol_folds, rank_summary, retrieval_ranks,
)
from shared.errors import UserError


def toy_matrix() -> np.ndarray:
    """2 images x 10 captions (captions 0-4 -> image 0, 5-9 -> image 1), distinct scores."""
    sims = np.array(
        [
            [0.10, 0.90, 0.20, 0.30, 0.05, 0.95, 0.15, 0.12, 0.11, 0.13],
            [0.50, 0.40, 0.30, 0.20, 0.10, 0.05, 0.45, 0.60, 0.04, 0.03],
        ],
        dtype=np.float32,
    )
    return sims


def test_hand_computed_ranks_on_toy_matrix():
    i2t, t2i = retrieval_ranks(toy_matrix())
    # image 0: best own caption is 1 (0.90); only caption 5 (0.95) is higher -> rank 1
    # image 1: best own caption is 7 (0.60); nothing higher -> rank 0
    assert i2t.tolist() == [1, 0]
    # caption j: rank 0 if its own image scores higher in column j, else 1
    assert t2i.tolist() == [1, 0, 1, 0, 1, 1, 0, 0, 1, 1]


def test_metric_record_from_toy_matrix():
    m = evaluate_sims(toy_matrix())
    assert tuple(m) == METRIC_KEYS
    assert m["i2t_r1"] == 50.0 and m["i2t_r5"] == 100.0 and m["i2t_r10"] == 100.0
    assert m["t2i_r1"] == 40.0 and m["t2i_r5"] == 100.0
    assert m["rsum"] == pytest.approx(50 + 100 + 100 + 40 + 100 + 100)
    assert m["i2t_medr"] == math.floor(0.5) + 1 and m["i2t_meanr"] == 1.5
    assert m["t2i_medr"] == math.floor(1.0) + 1 and m["t2i_meanr"] == pytest.approx(1.6)
    assert mean_recall(m) == pytest.approx(m["rsum"] / 6)
    assert "rSum 490.00" in format_table(m)


def test_rank_summary_conventions():
    s = rank_summary(np.array([0, 3, 7, 12]))
    assert s["r1"] == 25.0 and s["r5"] == 50.0 and s["r10"] == 75.0
    assert s["medr"] == math.floor(5.0) + 1  # floor(median) + 1
    assert s["meanr"] == pytest.approx(5.5 + 1)


def argsort_reference(sims: np.ndarray) -> tuple[list[int], list[int]]:
    """The public code's per-query loop (VSE++/SCAN style) for comparison."""
    n = sims.shape[0]
    i2t = []
    for i in range(n):
        order = np.argsort(sims[i])[::-1]
        i2t.append(min(int(np.where(order == k)[0][0]) for k in range(5 * i, 5 * i + 5)))
    t2i = []
    for j in range(5 * n):
        order = np.argsort(sims[:, j])[::-1]
        t2i.append(int(np.where(order == j // 5)[0][0]))
    return i2t, t2i


def test_matches_public_argsort_loop_on_random_matrix():
    sims = np.random.default_rng(0).standard_normal((30, 150)).astype(np.float32)
    i2t, t2i = retrieval_ranks(sims, chunk_size=7)
    ref_i2t, ref_t2i = argsort_reference(sims)
    assert i2t.tolist() == ref_i2t and t2i.tolist() == ref_t2i
    auto_i2t, auto_t2i = retrieval_ranks(sims)  # automatic chunking (one chunk here)
    assert auto_i2t.tolist() == ref_i2t and auto_t2i.tolist() == ref_t2i
    assert auto_chunk(25_000) == 167 and auto_chunk(100) == 1024


def test_matches_public_argsort_loop_where_untied_and_is_worse_only_on_ties():
    rng = np.random.default_rng(3)
    sims = rng.standard_normal((20, 100))  # float64: no chance ties
    for i in range(0, 20, 2):  # even images: a negative caption ties the best positive
        sims[i, (5 * i + 7) % 100] = sims[i, 5 * i : 5 * i + 5].max()
    sims[:, 1] = sims[0, 0]  # caption 1 (image 0): every image ties it
    i2t, t2i = retrieval_ranks(sims)
    ref_i2t, ref_t2i = np.array(argsort_reference(sims)[0]), np.array(argsort_reference(sims)[1])
    np.testing.assert_array_equal(i2t[1::2], ref_i2t[1::2])  # untied rows: identical
    assert (i2t[::2] >= ref_i2t[::2]).all() and (i2t[::2] > ref_i2t[::2]).any()  # tied rows: only ever worse
    assert (t2i >= ref_t2i).all() and t2i[1] == 19 and np.array_equal(np.delete(t2i, 1), np.delete(ref_t2i, 1))


def test_constant_matrix_scores_at_most_chance():
    n, gallery = 100, 500
    metrics = evaluate_sims(np.zeros((n, gallery), np.float32))  # a collapsed model
    for k in (1, 5, 10):
        assert metrics[f"i2t_r{k}"] <= 100 * 5 * k / gallery and metrics[f"t2i_r{k}"] <= 100 * k / n
    # pessimistic ties: every image ranks behind its 495 negatives, every caption behind 99 images
    assert metrics["rsum"] == 0.0 and metrics["i2t_medr"] == 496.0 and metrics["t2i_meanr"] == 100.0
    assert evaluate_protocol(np.full((n, gallery), 0.3, np.float32), "full")["rsum"] == 0.0


@pytest.mark.parametrize("fill", ["all-nan", "one-inf", "one-neg-inf"])
def test_non_finite_matrices_are_one_line_errors_naming_the_source(fill):
    sims = np.random.default_rng(0).standard_normal((20, 100)).astype(np.float32)
    if fill == "all-nan":
        sims[:] = np.nan
    else:
        sims[3, 15] = np.inf if fill == "one-inf" else -np.inf  # the positive of image 3: +inf used to rank it first
    with pytest.raises(UserError, match=r"^m\.npy: the score matrix holds -?(nan|inf) at row \d+, column \d+ ") as err:
        evaluate_sims(sims, source="m.npy")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="^epoch 2 dev: "):
        evaluate_protocol(sims, "full", source="epoch 2 dev")
    with pytest.raises(UserError, match="at row"):
        retrieval_ranks(sims)


def test_folded_protocol_refuses_nan_outside_the_fold_blocks():
    sims = folded_matrix(np.random.default_rng(2))
    sims[0, 99] = np.nan  # image 0 (fold 0) x caption 99 (fold 4): never ranked under coco1k
    with pytest.raises(UserError, match="^s.npy: .* at row 0, column 99"):
        evaluate_protocol(sims, EvalProtocol("coco1k-toy", 20, n_folds=5), source="s.npy")


def test_is_collapsed_is_relative_to_the_score_scale():
    assert is_collapsed(0.0, 0.0) and is_collapsed(0.7, 0.7) and is_collapsed(1000.0, 1000.0 + 1e-2)
    assert not is_collapsed(0.70, 0.71) and not is_collapsed(-1e-6, 1e-6) and not is_collapsed(1e-6, 2e-6)
    assert is_collapsed(0.7, 0.7 * (1 + COLLAPSE_RTOL)) and not is_collapsed(0.7, 0.7 * (1 + 2 * COLLAPSE_RTOL))


def folded_matrix(rng, n_images=20, n_folds=5, strength=(0.5, 1.0, 1.5, 2.0, 3.0)) -> np.ndarray:
    sims = rng.standard_normal((n_images, 5 * n_images)).astype(np.float32)
    size = n_images // n_folds
    for f in range(n_folds):
        for i in range(f * size, (f + 1) * size):
            sims[i, 5 * i : 5 * i + 5] += strength[f]
    return sims


def test_protocol_folds_slice_consecutive_blocks():
    proto = EvalProtocol("coco1k-toy", 20, n_folds=5)
    folds = protocol_folds(np.zeros((20, 100)), proto)
    assert folds[0] == (slice(0, 4), slice(0, 20))
    assert folds[4] == (slice(16, 20), slice(80, 100))


def test_folded_protocol_ignores_entries_outside_the_fold_blocks():
    rng = np.random.default_rng(1)
    sims = folded_matrix(rng)
    proto = EvalProtocol("coco1k-toy", 20, n_folds=5)
    before = evaluate_protocol(sims, proto)
    poisoned = sims.copy()
    for f in range(5):
        poisoned[4 * f : 4 * f + 4, : 20 * f] = 100.0  # off-block: other folds' captions
    assert evaluate_protocol(poisoned, proto) == before
    assert evaluate_protocol(poisoned, "full") != evaluate_protocol(sims, "full")


def test_coco1k_averages_each_metric_and_rsum_from_averaged_recalls():
    rng = np.random.default_rng(2)
    sims = folded_matrix(rng)
    proto = EvalProtocol("coco1k-toy", 20, n_folds=5)
    folds = evaluate_folds(sims, proto)
    assert len(folds) == 5
    expected = {k: np.mean([f[k] for f in folds]) for k in METRIC_KEYS}
    avg = evaluate_protocol(sims, proto)
    for key in METRIC_KEYS:
        assert avg[key] == pytest.approx(expected[key])
    six = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")
    assert avg["rsum"] == pytest.approx(sum(avg[k] for k in six))
    assert avg["rsum"] == pytest.approx(np.mean([f["rsum"] for f in folds]))


def test_coco1k_rsum_is_not_the_scan_lineage_misprint():
    """docs/retrieval.md: SCAN/SGRAF/VSRN average rows [r1,r5,r10,medr,meanr, r1i,r5i,r10i,
    medri,meanri, ar, ari, rsum] over folds and print mean[10] * 6 = 2 x the i2t recall sum."""
    folds = [
        {"i2t_r1": 70.0, "i2t_r5": 90.0, "i2t_r10": 95.0, "t2i_r1": 50.0, "t2i_r5": 80.0, "t2i_r10": 88.0,
         "rsum": 473.0, "i2t_medr": 1.0, "i2t_meanr": 3.0, "t2i_medr": 2.0, "t2i_meanr": 6.0},
        {"i2t_r1": 74.0, "i2t_r5": 93.0, "i2t_r10": 97.0, "t2i_r1": 56.0, "t2i_r5": 84.0, "t2i_r10": 90.0,
         "rsum": 494.0, "i2t_medr": 1.0, "i2t_meanr": 2.6, "t2i_medr": 1.0, "t2i_meanr": 5.0},
    ]
    rows = []
    for f in folds:
        ar = (f["i2t_r1"] + f["i2t_r5"] + f["i2t_r10"]) / 3
        ari = (f["t2i_r1"] + f["t2i_r5"] + f["t2i_r10"]) / 3
        rows.append([f["i2t_r1"], f["i2t_r5"], f["i2t_r10"], f["i2t_medr"], f["i2t_meanr"],
                     f["t2i_r1"], f["t2i_r5"], f["t2i_r10"], f["t2i_medr"], f["t2i_meanr"], ar, ari, f["rsum"]])
    mean_row = np.mean(rows, axis=0)
    misprint, correct = mean_row[10] * 6, mean_row[12]
    ours = average_folds(folds)["rsum"]
    assert ours == pytest.approx(correct) == pytest.approx(483.5)
    assert misprint == pytest.approx(519.0)
    assert abs(ours - misprint) > 1.0


def test_protocol_shape_checks_give_one_line_errors():
    with pytest.raises(UserError) as err:
        evaluate_protocol(np.zeros((10, 50), np.float32), "f30k")
    assert "f30k" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError):
        evaluate_protocol(np.zeros((10, 40), np.float32), "full")
    with pytest.raises(UserError):
        evaluate_protocol(np.zeros((10, 50), np.float32), "coco-2k")
    assert PROTOCOLS["coco1k"].n_folds == 5 and PROTOCOLS["coco5k"].n_images == 5000
