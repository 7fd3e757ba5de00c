"""Paired comparisons of each precision against the full-precision baseline, from stored per-sample rows.

Pure functions over rows as the privacy study stores them (`kind` = "mi", `model`, `precision`, optional `seed`,
`sample_id`, `label` 1/0, and one column per attack holding its score, higher = member). The two scorings of a
comparison are matched by sample id, so every test is paired. Tests and formulas: docs/METRICS.md ("Paired
comparisons against the baseline precision"). Imports `stats` and leaves only, so the privacy study's summary, the
findings and the report can all call it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from quantrisk.results import MetricRow
from quantrisk.stats import TprAt, delong_test, fast_auc, holm, paired_bootstrap_diff

FULL_PRECISION_ORDER: tuple[str, ...] = ("fp32", "bf16", "fp16")
PAIRED_METRICS: tuple[str, ...] = ("delta_auc", "delong_se", "delong_p", "delong_p_holm", "delta_tpr@1%fpr")


def baseline_precision(precisions: Iterable[str]) -> str | None:
    """The run's full-precision baseline among `precisions`: fp32, else bf16, else fp16, else None."""
    have = set(precisions)
    return next((p for p in FULL_PRECISION_ORDER if p in have), None)


def _scores(rows: Sequence[dict[str, Any]], attack: str) -> dict[str, tuple[float, int]]:
    out = {}
    for r in rows:
        v = r.get(attack)
        if v is not None and np.isfinite(v):
            out[str(r["sample_id"])] = (float(v), int(r["label"]))
    return out


def paired_comparisons(
    mi_rows: Iterable[dict[str, Any]],
    attacks: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> list[MetricRow]:
    """For every (model, seed) group of `mi_rows`, every precision other than the baseline (`baseline_precision`) and
    every attack in `attacks`: on the samples both precisions scored,

    - `delta_auc` = AUC(precision) − AUC(baseline) with its paired stratified bootstrap CI (`n_resamples`, `seed`),
    - `delong_se`: DeLong's standard error of that difference (the findings build their family-adjusted intervals
      from it),
    - `delong_p`: DeLong's two-sided p-value of that difference, and `delong_p_holm`: Holm-adjusted over all the
      precisions × attacks of the (model, seed) group,
    - `delta_tpr@1%fpr` = TPR@1%FPR(precision) − TPR@1%FPR(baseline) with its paired bootstrap CI.

    Labels: model, precision, seed (when the rows carry one), attack, baseline, n (paired samples). Groups without a
    full-precision baseline produce nothing; pairs with fewer than 2 members or non-members are left out."""
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in mi_rows:
        if r.get("kind", "mi") != "mi":
            continue
        groups[(str(r.get("model", "")), str(r.get("seed", "")))][str(r["precision"])].append(r)
    out: list[MetricRow] = []
    for (model, run_seed), by_prec in groups.items():
        base = baseline_precision(by_prec)
        if base is None:
            continue
        family: list[MetricRow] = []
        for prec, rows in by_prec.items():
            if prec == base:
                continue
            for attack in attacks:
                a, b = _scores(rows, attack), _scores(by_prec[base], attack)
                ids = sorted(set(a) & set(b))
                y = np.array([a[i][1] for i in ids])
                if (y == 1).sum() < 2 or (y == 0).sum() < 2:
                    continue
                sa, sb = np.array([a[i][0] for i in ids]), np.array([b[i][0] for i in ids])
                labels = {"model": model, "precision": prec, "attack": attack, "baseline": base, "n": str(len(ids))}
                if run_seed:
                    labels["seed"] = run_seed
                d_auc = paired_bootstrap_diff(fast_auc, sa, sb, y, n_resamples=n_resamples, seed=seed)
                d_tpr = paired_bootstrap_diff(TprAt(0.01), sa, sb, y, n_resamples=n_resamples, seed=seed)
                dl = delong_test(sa, sb, y)
                out.append(MetricRow("delta_auc", d_auc.value, dict(labels), d_auc.low, d_auc.high))
                out.append(MetricRow("delong_se", dl.se, dict(labels)))
                family.append(MetricRow("delong_p", dl.p_value, dict(labels)))
                out.append(MetricRow("delta_tpr@1%fpr", d_tpr.value, dict(labels), d_tpr.low, d_tpr.high))
        adjusted = holm([m.value for m in family])
        out += family
        out += [MetricRow("delong_p_holm", p, dict(m.labels)) for m, p in zip(family, adjusted, strict=True)]
    return out
