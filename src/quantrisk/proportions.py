"""Binomial proportions (attack success, false triggers, a detector's true/false-positive rates): Wilson score and
Clopper-Pearson intervals, and Newcombe's interval for a difference of two proportions. Formulas and sources in docs/METRICS.md ("Rates")."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials (Wilson 1927; Newcombe 1998, method 3):
    centre (k + z²/2)/(n + z²), half-width z·sqrt(p(1−p)/n + z²/4n²)/(1 + z²/n). Stays inside [0, 1] and is not
    degenerate at k = 0 or k = n (0/48 -> [0, 0.074]). n = 0 -> (0, 1)."""
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def newcombe_diff_ci(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(d, low, high) for d = k1/n1 − k2/n2 by Newcombe's hybrid score interval (Newcombe 1998, method 10) from the
    two Wilson intervals (l1, u1), (l2, u2): low = d − sqrt((p1−l1)² + (u2−p2)²), high = d + sqrt((u1−p1)² + (p2−l2)²).
    Treats the two rates as independent samples; for the same inputs scored twice it is conservative."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_ci(k1, n1, z)
    l2, u2 = wilson_ci(k2, n2, z)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def clopper_pearson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson 1934) interval of k successes in n trials: lower = Beta quantile (a/2; k, n-k+1),
    upper = Beta quantile (1-a/2; k+1, n-k), a = 1 - level; lower 0 at k = 0, upper 1 at k = n (0/10 -> [0, 0.308]).
    Never narrower than the nominal level (conservative); n = 0 -> (0, 1)."""
    from scipy.stats import beta

    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    a = 1.0 - level
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi
