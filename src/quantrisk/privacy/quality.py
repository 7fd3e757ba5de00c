"""Quality with power: the held-out negative log-likelihood of a model at a precision, with its 95% CI.

NLL (nats/token) = −Σ_i Σ_t log p(x_{i,t} | x_{i,<t}) / Σ_i T_i over the samples i of a set (token-weighted mean:
every scored token counts once). Its CI is a percentile bootstrap over *samples* (the unit that was drawn; tokens of
one sample are not independent): B resamples of the samples with replacement, each giving the ratio of summed
NLL to summed tokens (Efron & Tibshirani 1993, ch. 13, the bootstrap of a ratio estimator). On non-member code it
is the primary quality measure of the privacy study (docs/METRICS.md, "Quality"): unlike CodeBLEU from a handful of
greedy completions it moves with every logit the quantizer changes, so small precision effects are resolvable.
Perplexity = exp(NLL).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quantrisk.stats import Interval


def nll_ci(logprobs: Sequence[np.ndarray], *, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> Interval:
    """Token-weighted mean NLL of the samples' per-token log-probabilities `logprobs` (natural log), with a
    (1 − alpha) percentile bootstrap interval over samples. Samples without tokens are ignored."""
    lps = [np.asarray(x, dtype=float) for x in logprobs if len(x)]
    if not lps:
        raise ValueError("no scored tokens")
    sums = np.array([-x.sum() for x in lps])
    counts = np.array([x.size for x in lps], dtype=float)
    value = -float(np.concatenate(lps).mean())  # = sums.sum() / counts.sum(), as computed before the CI existed
    if len(lps) < 2 or n_resamples < 1:
        return Interval(value, value, value)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(lps), size=(n_resamples, len(lps)))
    stats = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return Interval(value, float(low), float(high))
