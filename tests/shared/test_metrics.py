import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from shared.errors import UserError
from shared.metrics import MultilabelCounts, multilabel_accuracy, multilabel_auc, multilabel_f1, positive_ranks
from shared.metrics import ranking
from shared.metrics.ranking import check_finite, score_range


def _random_multilabel(seed, n=300, c=7, unknown=0.1):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < rng.uniform(0.1, 0.6, c)).astype(np.int64)
    scores = np.clip(0.6 * labels + rng.normal(0.2, 0.3, (n, c)), 0, 1)
    scores[rng.random((n, c)) < 0.05] = 0.5  # ties and exact-threshold hits
    labels[rng.random((n, c)) < unknown] = -1
    return scores, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_accuracy_auc_equal_sklearn_with_unknown_masking(seed):
    scores, labels = _random_multilabel(seed)
    f1, f1_macro = multilabel_f1(scores, labels)
    acc, acc_macro = multilabel_accuracy(scores, labels)
    auc, auc_macro = multilabel_auc(scores, labels)
    for c in range(labels.shape[1]):
        keep = labels[:, c] >= 0
        y, s = labels[keep, c], scores[keep, c]
        assert f1[c] == pytest.approx(f1_score(y, s >= 0.5, zero_division=0), abs=1e-6)
        assert acc[c] == pytest.approx(accuracy_score(y, s >= 0.5), abs=1e-6)
        assert auc[c] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    assert f1_macro == pytest.approx(f1.mean(), abs=1e-12)
    assert acc_macro == pytest.approx(acc.mean(), abs=1e-12)
    assert auc_macro == pytest.approx(auc.mean(), abs=1e-12)


def test_counts_accumulate_over_batches_not_average_of_batches():
    scores, labels = _random_multilabel(3, n=200)
    counts = MultilabelCounts(labels.shape[1])
    for start in range(0, 200, 37):
        counts.update(torch.tensor(scores[start : start + 37]), torch.tensor(labels[start : start + 37]))
    whole_f1, _ = multilabel_f1(scores, labels)
    np.testing.assert_allclose(counts.f1(), whole_f1, atol=1e-12)
    np.testing.assert_allclose(counts.auc(), multilabel_auc(scores, labels)[0], atol=1e-12)
    summary = counts.summary([f"AU{i}" for i in range(labels.shape[1])])
    assert set(summary) == {f"AU{i}" for i in range(labels.shape[1])} | {"macro"}


def test_auc_undefined_for_single_class_is_nan_and_left_out_of_macro():
    scores = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.6]])
    labels = np.array([[1, 1], [0, 1], [1, -1]])
    auc, macro = multilabel_auc(scores, labels)
    assert auc[0] == 1.0 and np.isnan(auc[1]) and macro == 1.0


def test_invalid_labels_rejected():
    with pytest.raises(ValueError, match="labels must be"):
        multilabel_f1(np.zeros((2, 2)), np.array([[0, 2], [1, 0]]))


def argsort_i2t(sims):
    """The public SCAN/VSE++ loop: per image, argsort descending, rank = first position of its 5 captions."""
    ranks = []
    for i in range(sims.shape[0]):
        order = np.argsort(sims[i])[::-1]
        ranks.append(min(np.where(order == 5 * i + k)[0][0] for k in range(5)))
    return np.array(ranks)


def argsort_t2i(sims):
    """The public loop for text → image: per caption, argsort descending, rank = position of its image."""
    return np.array([np.where(np.argsort(sims[:, j])[::-1] == j // 5)[0][0] for j in range(sims.shape[1])])


def test_positive_ranks_match_argsort_loop_on_tie_free_matrices():
    for seed in range(3):
        sims = np.random.default_rng(seed).normal(size=(40, 200))  # float64: no chance ties
        assert len(np.unique(sims)) == sims.size  # tie-free
        i2t = positive_ranks(sims, np.arange(200).reshape(40, 5), chunk_size=7)
        np.testing.assert_array_equal(i2t, argsort_i2t(sims))
        t2i = positive_ranks(torch.from_numpy(sims).T.contiguous(), np.arange(200) // 5, chunk_size=16)
        np.testing.assert_array_equal(t2i, argsort_t2i(sims))


def test_positive_ranks_differ_from_argsort_only_pessimistically_on_tied_matrices():
    rng = np.random.default_rng(4)
    sims = rng.integers(0, 4, size=(30, 150)).astype(np.float32)  # four score levels: ties everywhere
    i2t = positive_ranks(sims, np.arange(150).reshape(30, 5))
    t2i = positive_ranks(sims.T, np.arange(150) // 5)
    for ours, loop in ((i2t, argsort_i2t(sims)), (t2i, argsort_t2i(sims))):
        assert (ours >= loop).all() and (ours > loop).any()  # never better than some tie order, often worse
    # the exact pessimistic rank: negatives scoring >= the best positive
    expected = [int(((sims[i] >= sims[i, 5 * i : 5 * i + 5].max()).sum()) - (sims[i, 5 * i : 5 * i + 5] >= sims[i, 5 * i : 5 * i + 5].max()).sum())
                for i in range(30)]
    np.testing.assert_array_equal(i2t, expected)


def test_ties_count_against_the_query_and_other_positives_never_do():
    sims = np.array([[0.5, 0.5, 0.9, 0.1], [0.2, 0.3, 0.4, 0.1], [0.7, 0.7, 0.7, 0.7]])
    ranks = positive_ranks(sims, np.array([[1, -1], [0, 3], [0, 1]]))
    # row 0: negatives 0 (tie at 0.5) and 2 (0.9) are >= the positive; row 1: 0.3 and 0.4 beat 0.2;
    # row 2: both positives tie each other (not counted) and the two negatives (counted)
    np.testing.assert_array_equal(ranks, [2, 2, 2])


def test_constant_matrix_gives_every_query_the_worst_rank():
    i2t = positive_ranks(np.zeros((100, 500), np.float32), np.arange(500).reshape(100, 5))
    t2i = positive_ranks(torch.zeros(500, 100), np.arange(500) // 5)
    assert (i2t == 495).all() and (t2i == 99).all()
    assert (positive_ranks(np.ones((3, 4), np.int64), np.array([0, 1, 2])) == 3).all()  # integer scores


def test_positive_ranks_errors():
    sims = np.array([[0.5, 0.5, 0.9, 0.1], [0.2, 0.3, 0.4, 0.1]])
    with pytest.raises(ValueError, match="at least one positive"):
        positive_ranks(sims, np.array([[-1, -1], [0, 1]]))
    with pytest.raises(ValueError, match="outside the gallery"):
        positive_ranks(sims, np.array([0, 4]))
    with pytest.raises(ValueError, match="same positive twice"):
        positive_ranks(sims, np.array([[1, 1], [0, 3]]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_refused_with_their_position(bad):
    sims = np.zeros((6, 30), np.float32)
    sims[4, 17] = bad
    with pytest.raises(UserError, match=r"^scores: the score matrix holds -?(nan|inf) at row 4, column 17 "):
        positive_ranks(sims, np.arange(30).reshape(6, 5))
    with pytest.raises(UserError, match=r"^run/x\.npy: .* at row 4, column 17"):
        check_finite(torch.from_numpy(sims), "run/x.npy")


def test_score_range_streams_numpy_blocks_and_propagates_nan(tmp_path, monkeypatch):
    monkeypatch.setattr(ranking, "RANGE_CHUNK_ELEMENTS", 40)  # 4 rows of 10 per block
    sims = np.arange(100, dtype=np.float32).reshape(10, 10) - 30
    np.save(tmp_path / "s.npy", sims)
    mapped = np.load(tmp_path / "s.npy", mmap_mode="r")
    assert score_range(mapped) == (-30.0, 69.0) and score_range(torch.from_numpy(sims)) == (-30.0, 69.0)
    sims[9, 9] = np.nan
    assert all(np.isnan(v) for v in score_range(sims)) and all(np.isnan(v) for v in score_range(torch.from_numpy(sims)))
    assert (positive_ranks(mapped, np.arange(10)) == [9 - i for i in range(10)]).all()  # read-only map, no copy
    flipped = torch.from_numpy(np.ascontiguousarray(sims)).T  # a transposed view is reduced in memory order
    assert all(np.isnan(v) for v in score_range(flipped))
    big_endian = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5).astype(">f4")  # torch cannot wrap it
    assert score_range(big_endian) == (-5.0, 6.0) and score_range(np.arange(6).reshape(2, 3)) == (0.0, 5.0)
    big_endian[1, 2] = np.inf
    with pytest.raises(UserError, match="holds inf at row 1, column 2"):
        check_finite(big_endian, "big.npy")
