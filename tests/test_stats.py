"""Known-answer tests for the MI statistics and correlations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantrisk.stats import (
    TprAt,
    bootstrap_ci,
    delong_test,
    fast_auc,
    holm,
    paired_bootstrap_diff,
    pearson,
    roc_auc,
    roc_curve_points,
    spearman,
    tpr_at_fpr,
    tpr_ci,
)


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


# ---- paired comparisons, DeLong, Holm, exact correlation p-values -------------------------------------------------

def _delong_by_definition(a, b, y):
    """DeLong's variance straight from the definition: ψ over all member × non-member pairs (O(mn))."""
    a, b, y = map(np.asarray, (a, b, y))

    def comps(s):
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    (ta, v10a, v01a), (tb, v10b, v01b) = comps(a), comps(b)
    m, n = len(v10a), len(v01a)
    s10, s01 = np.cov(np.stack([v10a, v10b])), np.cov(np.stack([v01a, v01b]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return ta - tb, math.sqrt(var)


def test_delong_hand_computed_case():
    # A: members 3, 2; non-members 1, 2.5
    # A: ψ pairs (3>1, 3>2.5, 2>1, 2<2.5) -> AUC 3/4; V10 = (1, 1/2), V01 = (1, 1/2)
    # B: members 3, 1; non-members 2, 0: (3>2, 3>0, 1<2, 1>0) -> AUC 3/4; V10 = (1, 1/2), V01 = (1/2, 1)
    # Δ = 0; Var = [S10aa + S10bb − 2 S10ab]/2 + [S01aa + S01bb − 2 S01ab]/2
    #   S10: both (1, 1/2) -> var 1/8 each, cov 1/8 -> 0;  S01: (1, 1/2) vs (1/2, 1) -> 1/8 + 1/8 + 2/8 = 1/2
    #   Var = 0 + (1/2)/2 = 1/4 -> se = 1/2, z = 0, p = 1
    y = [1, 1, 0, 0]
    d = delong_test([3, 2, 1, 2.5], [3, 1, 2, 0], y)
    assert d.auc_a == pytest.approx(0.75) and d.auc_b == pytest.approx(0.75)
    assert d.delta == 0 and d.se == pytest.approx(0.5) and d.p_value == pytest.approx(1.0)
    # A perfect (AUC 1, no variance), B as above (3/4): Var = S10bb/2 + S01bb/2 = (1/8)/2 + (1/8)/2 = 1/8
    d = delong_test([3, 4, 1, 2], [3, 1, 2, 0], y)
    assert d.delta == pytest.approx(0.25) and d.se == pytest.approx(math.sqrt(1 / 8))
    assert d.z == pytest.approx(0.25 / math.sqrt(1 / 8))
    assert d.p_value == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(d.z / math.sqrt(2)))))


def test_fast_delong_equals_the_definition_with_ties():
    rng = np.random.default_rng(7)
    y = np.r_[np.ones(40), np.zeros(55)].astype(int)
    a = np.round(rng.normal(size=95) + 0.8 * y, 1)
    b = np.round(a + rng.normal(scale=0.7, size=95) - 0.3 * y, 1)
    d = delong_test(a, b, y)
    delta, se = _delong_by_definition(a, b, y)
    assert d.delta == pytest.approx(delta, abs=1e-12) and d.se == pytest.approx(se, rel=1e-10)
    assert d.auc_a == pytest.approx(roc_auc(a, y)) and d.auc_b == pytest.approx(roc_auc(b, y))
    assert 0 < d.p_value < 1
    same = delong_test(a, a, y)
    assert same.delta == 0 and same.p_value == 1.0


def test_delong_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(300), np.zeros(300)].astype(int)
    strong = rng.normal(size=600) + 1.5 * y
    weak = strong + rng.normal(scale=2.0, size=600)  # the same signal buried in noise: lower AUC
    assert delong_test(strong, weak, y).p_value < 1e-6
    null_p = [delong_test(rng.normal(size=600) + 0.5 * y, rng.normal(size=600) + 0.5 * y, y).p_value for _ in range(200)]
    assert 0.02 < np.mean(np.array(null_p) < 0.05) < 0.1  # ≈ 5% false rejections under H0


def test_tpr_ci_vectorised_equals_the_loop():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(70), np.zeros(130)].astype(int)
    s = np.round(rng.normal(size=200) + y, 1)
    for fpr in (0.0, 0.01, 0.1, 0.5, 1.0):
        fast = tpr_ci(s, y, fpr, n_resamples=200, seed=4)
        loop = bootstrap_ci(lambda a, b, f=fpr: tpr_at_fpr(a, b, f), s, y, n_resamples=200, seed=4)
        assert (fast.value, fast.low, fast.high) == pytest.approx((loop.value, loop.low, loop.high), abs=1e-12)
    assert tpr_ci(s, y, 0.1).low <= tpr_at_fpr(s, y, 0.1) <= tpr_ci(s, y, 0.1).high


def test_paired_bootstrap_is_narrower_than_unpaired_and_centred_on_the_difference():
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(150), np.zeros(150)].astype(int)
    base = rng.normal(size=300) + 0.6 * y
    other = base + rng.normal(scale=0.3, size=300)  # a small perturbation of the same scores
    d = paired_bootstrap_diff(fast_auc, other, base, y, n_resamples=500, seed=1)
    assert d.value == pytest.approx(roc_auc(other, y) - roc_auc(base, y))
    assert d.low <= d.value <= d.high
    ca, cb = bootstrap_ci(fast_auc, other, y, seed=1), bootstrap_ci(fast_auc, base, y, seed=1)
    assert d.high - d.low < 0.5 * ((ca.high - ca.low) + (cb.high - cb.low)) / 2  # pairing removes shared variance
    same = paired_bootstrap_diff(TprAt(0.01), base, base, y, n_resamples=50)
    assert (same.value, same.low, same.high) == (0, 0, 0)


def test_holm_known_answers():
    # sorted 0.01, 0.03, 0.04 -> ×3, ×2, ×1 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    out = holm([0.01, math.nan, 0.02])  # NaN ignored: m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([]) == []


def test_exact_correlation_p_values():
    # perfect ranking: only the identity pairing reaches ρ = 1 -> one-sided 1/n!, two-sided 2/n!
    c = spearman([1, 2, 3], [10, 20, 30])
    assert c.method == "exact permutation" and c.p_value == pytest.approx(1 / 3)
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]).p_value == pytest.approx(1 / 12)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]).p_value == pytest.approx(1 / 12)
    # n = 4, ρ = 0.8: ρ ≥ 0.8 for the identity and the 3 adjacent swaps -> 4/24 one-sided, 1/3 two-sided
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]).p_value == pytest.approx(1 / 3)
    # scipy's asymptotic p-value for a perfect ranking is 0; the exact one is not
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64], exact=False).p_value == pytest.approx(0, abs=1e-12)
    # n = 3 Pearson: r(1,2,3 ; 1,2,4) = 0.982; its pairings give r* in {±0.982, ±0.655, ±0.327}: 1/6 ≥ r -> 1/3
    assert pearson([1, 2, 3], [1, 2, 4]).p_value == pytest.approx(1 / 3)
    big = spearman(np.arange(12), np.arange(12) ** 2)
    assert big.method == "asymptotic" and big.n == 12
    # n = 8 agrees with scipy's own exact permutation test
    from scipy.stats import permutation_test, spearmanr
    x, y = np.array([3, 1, 4, 1.5, 5, 9, 2, 6]), np.array([2, 7, 1, 8, 2.5, 8.5, 1.8, 2.8])
    ref = permutation_test((x,), lambda a: spearmanr(a, y).statistic, permutation_type="pairings", n_resamples=np.inf)
    assert spearman(x, y).p_value == pytest.approx(ref.pvalue)


def test_within_group_correlation_removes_the_group_level():
    from quantrisk.stats import within_group_correlation

    # two models; within each, y rises with x, but the model with the higher x has the lower y level:
    # pooled Spearman is negative, with the model as a fixed effect the correlation is perfect (+1)
    x = [1, 2, 3, 11, 12, 13]
    y = [11, 12, 13, 1, 2, 3]
    groups = ["a"] * 3 + ["b"] * 3
    assert spearman(x, y).r < 0
    c = within_group_correlation(x, y, groups)
    assert c.r == pytest.approx(1.0) and c.method.startswith("exact")
    # exact: 3!·3! = 36 within-group pairings, only the observed one reaches r = 1 -> 2/36
    assert c.p_value == pytest.approx(2 / 36)
    # one group only: equals the exact Spearman of that group
    assert within_group_correlation([1, 2, 3, 4], [1, 3, 2, 4], list("aaaa")).p_value == pytest.approx(spearman([1, 2, 3, 4], [1, 3, 2, 4]).p_value)
    big = within_group_correlation(np.arange(16), np.arange(16) % 5, ["a"] * 8 + ["b"] * 8, n_resamples=2000)
    assert big.method.startswith("within-group permutation (2000")
    with pytest.raises(ValueError, match="at least 3"):
        within_group_correlation([1, 2, 3], [1, 2, 3], ["a", "b", "c"])


def test_monte_carlo_permutation_p_is_never_zero():
    from quantrisk.stats import within_group_correlation

    # 12 points, one group: 12! > 2000 pairings, so random permutations; a perfect ranking is never matched by one
    c = within_group_correlation(np.arange(12), np.arange(12), ["a"] * 12, n_resamples=2000)
    assert c.method.startswith("within-group permutation") and c.p_value == pytest.approx(2 / 2001)


def test_auc_se_matches_delong_variance_of_a_single_auc():
    from quantrisk.stats import auc_se, delong_test

    rng = np.random.default_rng(3)
    y = np.r_[np.ones(40), np.zeros(60)].astype(int)
    s = rng.normal(size=100) + y
    # DeLong's Var(A − B) with B constant (every score tied: V10 = V01 = 1/2) is Var(A)
    d = delong_test(s, np.zeros(100), y)
    assert auc_se(s, y) == pytest.approx(d.se, rel=1e-12)
