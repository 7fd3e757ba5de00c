"""Statistics for membership inference and correlations (pure functions over arrays).

Conventions: `scores` (n,) float, higher = more likely a member; `labels` (n,) in {0, 1}, 1 = member.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def _check(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D of equal length, got {s.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    if y.min(initial=1) == y.max(initial=0):
        raise ValueError("need both members (1) and non-members (0)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    return s, y


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve in [0, 1] (ties count half), via scikit-learn."""
    from sklearn.metrics import roc_auc_score

    s, y = _check(scores, labels)
    return float(roc_auc_score(y, s))


def roc_curve_points(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) points of the ROC curve, from (0, 0) to (1, 1), every threshold kept."""
    from sklearn.metrics import roc_curve

    s, y = _check(scores, labels)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, fpr: float) -> float:
    """Highest TPR over the thresholds whose FPR is ≤ `fpr` (no interpolation; as in LiRA, Carlini et al. 2022).

    With n non-members the smallest non-zero FPR is 1/n: for fpr < 1/n only thresholds above every
    non-member count, so the TPR is the share of members scoring above the top non-member.
    """
    f, t = roc_curve_points(scores, labels)
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (1 − alpha) percentile bootstrap interval."""

    value: float
    low: float
    high: float


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Interval:
    """Stratified percentile bootstrap: members and non-members are resampled separately (with
    replacement, their counts kept), so every resample has both classes."""
    s, y = _check(scores, labels)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    idx = np.empty((n_resamples, pos.size + neg.size), dtype=np.intp)
    for b in range(n_resamples):
        idx[b, : pos.size] = rng.choice(pos, pos.size)
        idx[b, pos.size :] = rng.choice(neg, neg.size)
    if metric is fast_auc:  # all resamples at once: the same values, 0.10 -> 0.05 s per attack at 200 + 200
        values = _auc_rows(s[idx], pos.size)
    else:
        values = np.array([metric(s[row], y[row]) for row in idx])
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return Interval(float(metric(s, y)), float(low), float(high))


def fast_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann–Whitney U) formula, ties averaged; equals `roc_auc` (used in the bootstrap)."""
    ordered = np.concatenate([scores[labels == 1], scores[labels != 1]])
    return float(_auc_rows(ordered[None, :], int((labels == 1).sum()))[0])


def _auc_rows(scores: np.ndarray, n_pos: int, rows_per_block: int = 128) -> np.ndarray:
    """ROC-AUC (rank-sum formula, ties averaged) of every row of `scores` (shape (B, n)) whose first `n_pos`
    columns are the positives."""
    from scipy.stats import rankdata

    n_neg = scores.shape[1] - n_pos
    out = np.empty(scores.shape[0])
    for i in range(0, scores.shape[0], rows_per_block):  # blocks bound the memory of rankdata's copies
        ranks = rankdata(scores[i : i + rows_per_block], axis=1)
        out[i : i + rows_per_block] = (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


@dataclass(frozen=True)
class Correlation:
    r: float
    p_value: float
    n: int


def _xy(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("x and y must be 1-D of equal length")
    if a.size < 3:
        raise ValueError(f"a correlation needs at least 3 points, got {a.size}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        raise ValueError("a correlation needs x and y that vary")
    return a, b


def pearson(x: ArrayLike, y: ArrayLike) -> Correlation:
    """Pearson r with its two-sided p-value (scipy)."""
    from scipy.stats import pearsonr

    a, b = _xy(x, y)
    r, p = pearsonr(a, b)
    return Correlation(float(r), float(p), int(a.size))


def spearman(x: ArrayLike, y: ArrayLike) -> Correlation:
    """Spearman rank correlation with its two-sided p-value (scipy)."""
    from scipy.stats import spearmanr

    a, b = _xy(x, y)
    r, p = spearmanr(a, b)
    return Correlation(float(r), float(p), int(a.size))
