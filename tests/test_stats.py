"""Known-answer tests for the MI statistics and correlations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantrisk.stats import bootstrap_ci, fast_auc, pearson, roc_auc, roc_curve_points, spearman, tpr_at_fpr


def test_auc_known_answers():
    # members 0.9, 0.4; non-members 0.5, 0.1: pairs (m > n): (0.9>0.5)(0.9>0.1)(0.4>0.1) = 3 of 4
    assert roc_auc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert roc_auc([1, 2, 3, 4], [1, 1, 0, 0]) == 0.0
    assert roc_auc([1, 1, 1, 1], [1, 0, 1, 0]) == 0.5  # ties count half
    assert fast_auc(np.array([0.9, 0.4, 0.5, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(0.75)


def test_tpr_at_fpr_known_answers():
    scores = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    labels = [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]  # 4 members, 6 non-members
    # FPR 0: thresholds above the top non-member (8) -> members 10, 9 -> TPR 2/4
    assert tpr_at_fpr(scores, labels, 0.0) == 0.5
    assert tpr_at_fpr(scores, labels, 0.01) == 0.5
    # FPR 1/6 allows the non-member 8 -> then 7 (member) -> TPR 3/4
    assert tpr_at_fpr(scores, labels, 1 / 6) == 0.75
    assert tpr_at_fpr(scores, labels, 2 / 6) == 1.0
    f, t = roc_curve_points(scores, labels)
    assert f[0] == 0 and t[-1] == 1 and f[-1] == 1


def test_bootstrap_is_seeded_and_brackets_the_value():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(100), np.zeros(100)].astype(int)
    s = rng.normal(size=200) + y
    a = bootstrap_ci(fast_auc, s, y, n_resamples=1000, seed=3)
    b = bootstrap_ci(fast_auc, s, y, n_resamples=1000, seed=3)
    assert a == b
    assert a.low < a.value < a.high
    assert a.value == pytest.approx(roc_auc(s, y))
    assert 0.05 < a.high - a.low < 0.25


def test_vectorised_bootstrap_auc_equals_the_per_resample_loop():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(60), np.zeros(90)].astype(int)
    s = np.round(rng.normal(size=150) + 0.5 * y, 1)  # rounded: many ties, averaged ranks must agree too
    fast = bootstrap_ci(fast_auc, s, y, n_resamples=300, seed=5)
    loop = bootstrap_ci(lambda a, b: roc_auc(a, b), s, y, n_resamples=300, seed=5)  # sklearn, one resample at a time
    assert fast.value == pytest.approx(loop.value, abs=1e-12)
    assert fast.low == pytest.approx(loop.low, abs=1e-12) and fast.high == pytest.approx(loop.high, abs=1e-12)
    assert fast_auc(s, y) == pytest.approx(roc_auc(s, y), abs=1e-12)


def test_correlations_known_answers():
    c = pearson([1, 2, 3], [2, 4, 6])
    assert c.r == pytest.approx(1.0) and c.n == 3
    # x = 1,2,3,4; y = 1,3,2,4: r = 0.8 (cov 4/3... hand: dx=-1.5,-.5,.5,1.5; dy=-1.5,.5,-.5,1.5 -> Σdxdy=4, Σdx²=Σdy²=5)
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]).r == pytest.approx(0.8)
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]).r == pytest.approx(0.8)
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]).r == pytest.approx(1.0)
    assert 0 < pearson([1, 2, 3, 4], [1, 3, 2, 4]).p_value < 1
    with pytest.raises(ValueError, match="at least 3"):
        pearson([1, 2], [1, 2])
    with pytest.raises(ValueError, match="vary"):
        spearman([1, 1, 1], [1, 2, 3])


def test_bad_inputs():
    with pytest.raises(ValueError, match="both"):
        roc_auc([1, 2], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([1, math.nan], [1, 0])
    with pytest.raises(ValueError, match="equal length"):
        roc_auc([1, 2, 3], [1, 0])
