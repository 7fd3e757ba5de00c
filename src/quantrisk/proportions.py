"""Binomial proportions (attack success, false triggers, a detector's true/false-positive rates): Wilson score and
Clopper-Pearson intervals, and Newcombe's intervals for a difference of two proportions (independent samples, and
the same units scored twice). Formulas and sources in docs/METRICS.md ("Rates")."""

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
    Treats the two rates as independent samples; for the same inputs scored twice use `newcombe_paired_diff_ci`.
    Not defined when n1 or n2 is 0: returns (nan, -1.0, 1.0) (no estimate, the whole range)."""
    if n1 < 0 or n2 < 0 or not (0 <= k1 <= n1 and 0 <= k2 <= n2):
        raise ValueError(f"need 0 <= k <= n, got k1={k1}, n1={n1}, k2={k2}, n2={n2}")
    if n1 == 0 or n2 == 0:
        return math.nan, -1.0, 1.0
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_ci(k1, n1, z)
    l2, u2 = wilson_ci(k2, n2, z)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def newcombe_paired_diff_ci(both: int, first_only: int, second_only: int, neither: int,
                            z: float = Z95) -> tuple[float, float, float]:
    """(d, low, high) for d = p1 − p2 of two proportions measured on the same n units (Newcombe 1998, "Improved
    confidence intervals for the difference between binomial proportions based on paired data", Stat Med 17:2635,
    method 10). Counts of the paired 2×2 table: a = `both`, b = `first_only`, c = `second_only`, d = `neither`;
    p1 = (a+b)/n, p2 = (a+c)/n, Wilson intervals (l1, u1), (l2, u2), and the correlation correction
    φ = C/√((a+b)(c+d)(a+c)(b+d)) with C = ad − bc − n/2 if ad − bc > n/2, ad − bc if < 0, else 0 (φ = 0 when a margin
    is empty): low = d − √((p1−l1)² − 2φ(p1−l1)(u2−p2) + (u2−p2)²), high = d + √((p2−l2)² − 2φ(p2−l2)(u1−p1) +
    (u1−p1)²). Never collapses to a point: with no discordant pair at n = 20 it is ±0.161. n = 0: (nan, −1, 1).
    Known answer: (59, 6, 16, 80) -> (−0.0621, −0.1186, −0.0046) (Fagerland, Lydersen & Laake 2017, ch. 8)."""
    a, b, c, d = both, first_only, second_only, neither
    if min(a, b, c, d) < 0:
        raise ValueError(f"paired counts must be >= 0, got {(a, b, c, d)}")
    n = a + b + c + d
    if n == 0:
        return math.nan, -1.0, 1.0
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_ci(a + b, n, z)
    l2, u2 = wilson_ci(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    corr = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = corr / math.sqrt(margins) if margins > 0 else 0.0
    diff = p1 - p2
    low = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = diff + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return diff, max(-1.0, low), min(1.0, high)


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
