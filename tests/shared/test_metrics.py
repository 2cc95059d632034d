import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from shared.metrics import MultilabelCounts, multilabel_accuracy, multilabel_auc, multilabel_f1, positive_ranks


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


def _reference_ranks_i2t(sims):
    """The public code's per-query loop (SCAN lineage), for comparison."""
    ranks = []
    for i in range(sims.shape[0]):
        order = np.argsort(sims[i])[::-1]
        ranks.append(min(np.where(order == 5 * i + k)[0][0] for k in range(5)))
    return np.array(ranks)


def test_positive_ranks_match_reference_loop_both_directions():
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(40, 200)).astype(np.float32)
    i2t = positive_ranks(sims, np.arange(200).reshape(40, 5), chunk_size=7)
    np.testing.assert_array_equal(i2t, _reference_ranks_i2t(sims))
    t2i = positive_ranks(torch.from_numpy(sims).T.contiguous(), np.arange(200) // 5, chunk_size=16)
    reference = np.array([np.where(np.argsort(-sims[:, j]) == j // 5)[0][0] for j in range(200)])
    np.testing.assert_array_equal(t2i, reference)


def test_positive_ranks_padding_ties_and_errors():
    sims = np.array([[0.5, 0.5, 0.9, 0.1], [0.2, 0.3, 0.4, 0.1]])
    ranks = positive_ranks(sims, np.array([[1, -1], [0, 3]]))
    np.testing.assert_array_equal(ranks, [1, 2])  # ties count in the query's favour
    with pytest.raises(ValueError, match="at least one positive"):
        positive_ranks(sims, np.array([[-1, -1], [0, 1]]))
    with pytest.raises(ValueError, match="outside the gallery"):
        positive_ranks(sims, np.array([0, 4]))
