"""The privacy study's cross-cell numbers, computed once (by the `privacy-summary` cell) from the metric rows of its
privacy cells; the CLI and the report read them from the store.

- best attack: the attack with the highest mean AUC over all the cells (every model, precision and seed); stored as
  `best_attack_auc` (value: that mean AUC; label `attack`).
- quality-risk correlation: over the (model, precision) points, values averaged over seeds, x = CodeBLEU and
  y = the best attack's AUC; Pearson and Spearman r with two-sided p-values (exact permutation at n ≤ 10; with several
  models, centred within each model: `stats.within_group_correlation`) (`pearson_r`, `pearson_p`, `spearman_r`,
  `spearman_p`; labels attack, x, y, n, p_method); `spearman_p_min`, the smallest two-sided p its permutation test
  can give at these points (2 / Π n_m! over models with ≥ 2 points); with several models also each model's own
  Spearman ρ (`model_spearman_r`, `model_spearman_p`, label `model`; models with ≥ 3 points). Formulas and sources:
  docs/METRICS.md ("Best attack and quality-risk correlation").
- paired comparisons of each precision against the full-precision baseline on the same samples
  (`comparisons.paired_comparisons`: delta_auc, delong_p, delong_p_holm, delta_tpr@1%fpr; docs/METRICS.md "Paired
  comparisons against the baseline precision").
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from quantrisk.results import MetricRow, StudyResult
from quantrisk.stats import pearson, spearman, within_group_correlation


def best_attack(rows: Iterable[MetricRow]) -> tuple[str, float] | None:
    """(attack, mean AUC) of the attack with the highest mean AUC over `rows` (first listed wins a tie)."""
    by: dict[str, list[float]] = {}
    for m in rows:
        if m.name == "auc":
            by.setdefault(m.labels["attack"], []).append(m.value)
    if not by:
        return None
    attack = max(by, key=lambda a: float(np.mean(by[a])))
    return attack, float(np.mean(by[attack]))


def _point_means(rows: Iterable[MetricRow]) -> dict[tuple[str, str], float]:
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for m in rows:
        acc[(m.labels.get("model", ""), m.labels.get("precision", ""))].append(m.value)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def summarize(rows: list[MetricRow], samples: Sequence[dict[str, Any]] = (), *, attacks: Sequence[str] = (),
              n_resamples: int = 1000, seed: int = 0) -> StudyResult:
    """The summary of the privacy cells whose metric rows are `rows` and per-sample rows `samples` (see the module
    doc); `attacks`, `n_resamples`, `seed`: of the paired comparisons."""
    out = StudyResult("privacy-summary")
    if samples and attacks:
        from quantrisk.comparisons import paired_comparisons

        out.metrics += paired_comparisons([r for r in samples if r.get("kind") == "mi"], list(attacks),
                                          n_resamples=n_resamples, seed=seed)
    best = best_attack(rows)
    if best is None:
        out.skipped["best attack: no AUC in the privacy cells"] = 1
        return out
    attack, mean_auc = best
    out.metrics.append(MetricRow("best_attack_auc", mean_auc, {"attack": attack}))
    points = {(m.labels.get("model", ""), m.labels.get("precision", "")) for m in rows if m.name == "auc"}
    if len(points) < 3:
        out.skipped[f"quality-risk correlation: needs 3 or more precisions, got {len(points)}"] = 1
        return out
    auc = _point_means(m for m in rows if m.name == "auc" and m.labels.get("attack") == attack)
    cb = _point_means(m for m in rows if m.name == "codebleu")
    keys = sorted(set(auc) & set(cb))
    x, y, groups = [cb[k] for k in keys], [auc[k] for k in keys], [k[0] for k in keys]
    base = {"attack": attack, "x": "codebleu", "y": "auc"}
    for name, fn in (("pearson", pearson), ("spearman", spearman)):
        try:
            if len(set(groups)) > 1:  # pooled over models only with the model as a fixed effect (within-model)
                c = within_group_correlation(x, y, groups, rank=name == "spearman")
                method = f"within-model, {c.method}"
            else:
                c = fn(x, y)
                method = c.method
        except ValueError as exc:
            out.skipped[f"{name} correlation: {exc}"] = 1
            continue
        labels = {**base, "n": str(c.n), "p_method": method}
        out.metrics += [MetricRow(f"{name}_r", c.r, labels), MetricRow(f"{name}_p", c.p_value, labels)]
        if name == "spearman":
            out.metrics.append(MetricRow("spearman_p_min", smallest_permutation_p(groups), labels))
    if len(set(groups)) > 1:
        out.metrics += per_model_spearman(x, y, groups, base, out.skipped)
    return out


def smallest_permutation_p(groups: Sequence[str]) -> float:
    """Smallest two-sided p a (within-model) permutation test of these points can give: 2 / Π n_m! over the models
    with ≥ 2 points (one model: 2 / n!); 1.0 when no model has 2."""
    total = math.prod(math.factorial(n) for n in Counter(groups).values() if n >= 2)
    return min(1.0, 2 / total) if total > 1 else 1.0


def per_model_spearman(x: Sequence[float], y: Sequence[float], groups: Sequence[str], labels: dict[str, str],
                       skipped: dict[str, int]) -> list[MetricRow]:
    """Each model's own Spearman ρ of (x, y) over its points (models with ≥ 3 points; exact permutation p at
    n ≤ 10): `model_spearman_r` / `model_spearman_p` rows labelled `model`; a model whose ρ is undefined is counted
    in `skipped`."""
    out = []
    for model in sorted(set(groups)):
        ix = [i for i, g in enumerate(groups) if g == model]
        if len(ix) < 3:
            continue
        try:
            c = spearman([x[i] for i in ix], [y[i] for i in ix])
        except ValueError as exc:
            skipped[f"spearman correlation of {model}: {exc}"] = 1
            continue
        lab = {**labels, "model": model, "n": str(c.n), "p_method": c.method}
        out += [MetricRow("model_spearman_r", c.r, lab), MetricRow("model_spearman_p", c.p_value, lab)]
    return out
