"""Class-balance weights (JAA-Net formula) and the MGRR-Net co-occurrence prior on toy labels."""

import numpy as np
import pytest

from fau.data.stats import (
    class_weights,
    conditional_agreement,
    cooccurrence_prior,
    grade_weights,
    occurrence_rates,
)

# AU a: 3 of 4 known frames active; AU b: 1 of 3 known frames active (one unknown).
TOY = np.array([[1, 0], [1, 1], [0, -1], [1, 0]])


def test_occurrence_rates_ignore_unknown():
    np.testing.assert_allclose(occurrence_rates(TOY), [3 / 4, 1 / 3])


def test_class_weights_jaa_formula_by_hand():
    # 1/r = 4/3 and 3; sum 13/3; w = n (1/r_i) / sum -> 2 * (4/3) / (13/3) = 8/13, 2 * 3 / (13/3) = 18/13
    np.testing.assert_allclose(class_weights(TOY), [8 / 13, 18 / 13])
    np.testing.assert_allclose(class_weights(TOY, norm="sum_to_one"), [4 / 13, 9 / 13])
    assert class_weights(TOY).sum() == pytest.approx(2.0)


def test_class_weights_never_active_and_never_known():
    labels = np.array([[1, 0, -1], [0, 0, -1], [1, 0, -1], [0, 0, -1]])
    # rates: 1/2; never active -> counted once -> 1/4; never known -> 1/r := 0
    np.testing.assert_allclose(class_weights(labels), 3 * np.array([2, 4, 0]) / 6)
    with pytest.raises(ValueError):
        class_weights(-np.ones((3, 2), dtype=int))


def test_prior_formula_by_hand():
    # a1 = 1 1 0 0 ; a2 = 1 0 0 0 ; a3 never active ; last row: a1 unknown (ignored for a1 pairs)
    labels = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [-1, 1, 0]])
    p = conditional_agreement(labels)
    # P_12 = 1/2 (P(a1=1|a2=1) + P(a1=0|a2=0)) = 1/2 (1/1 + 2/3) = 5/6 (row 5 ignored: a1 unknown)
    assert p[0, 1] == pytest.approx(5 / 6)
    # P_21 = 1/2 (P(a2=1|a1=1) + P(a2=0|a1=0)) = 1/2 (1/2 + 2/2) = 3/4
    assert p[1, 0] == pytest.approx(3 / 4)
    # a3 never active: P(a1=1|a3=1) has no evidence -> 0.5; P(a1=0|a3=0) = 2/4 -> P_13 = 1/2
    assert p[0, 2] == pytest.approx(0.5)
    # P_31 = 1/2 (P(a3=1|a1=1) + P(a3=0|a1=0)) = 1/2 (0 + 1) = 1/2
    assert p[2, 0] == pytest.approx(0.5)
    a = cooccurrence_prior(labels)
    np.testing.assert_allclose(a[0, 1], 2 / 3)         # |2 (5/6 - 1/2)|
    np.testing.assert_allclose(a[1, 0], 1 / 2)         # |2 (3/4 - 1/2)|
    np.testing.assert_allclose(a[0, 2], 0.0)
    np.testing.assert_allclose(np.diag(a)[:2], [1.0, 1.0])
    assert np.all((a >= 0) & (a <= 1))


def test_prior_of_opposite_aus_is_strong():
    labels = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    # P(a1=1|a2=1) = 0 and P(a1=0|a2=0) = 0 -> P = 0 -> A = |2 (0 - 0.5)| = 1
    np.testing.assert_allclose(cooccurrence_prior(labels), np.ones((2, 2)))


def test_grade_weights_inverse_frequency_mean_one():
    grades = np.array([0, 0, 0, 1, 2, 2])          # counts 3 1 2 0 -> 0 counted once
    inverse = 1 / np.array([3, 1, 2, 1])
    np.testing.assert_allclose(grade_weights(grades), 4 * inverse / inverse.sum())
    assert grade_weights(grades).mean() == pytest.approx(1.0)
