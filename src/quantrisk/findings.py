"""Findings: each claim of the two seed studies, tested on one run's stored rows.

`findings(rows)` is a pure function of the store's rows (`RunRows`: metric rows and per-sample rows, as
`Store.metrics()` / `Store.samples()` return them, and the privacy-summary cell's rows); one function per claim in the `CLAIMS` registry. Each returns a
`Finding` with the test used, the effect size, its CI and/or p-value, and a verdict: `holds`, `does not hold` or
`inconclusive` (with why: not enough models, precisions or samples, or an effect that the data cannot separate
from zero). Significance level `ALPHA` = 0.05, after Holm's correction wherever a claim runs several tests.
The derived privacy numbers (best attack, paired comparisons against the baseline, the quality-risk correlation)
are read from the summary's rows, never recomputed: a store without a summary gives `inconclusive` for the claims
that need them (P1, P3, P4). The trojan claims (T1-T3) are in `findings_trojan.py`. Tests and rules:
docs/METRICS.md ("Findings").
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from quantrisk.comparisons import baseline_precision
from quantrisk.registry import refuse_duplicate
from quantrisk.stats import bootstrap_diff, delong_test, fast_auc, holm

ALPHA = 0.05
HOLDS, NOT, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
NO_CHANGE_MARGIN = 0.02  # |ΔAUC| below this on the whole CI = "no change"
MIN_PAIRED = 20  # paired samples below which a null result is inconclusive
MIN_SIZE_RATIO = 1.5  # P4: "larger" = at least this many times the parameters (fp16 bytes) of the smaller model


NO_SUMMARY = "store has no privacy summary (an older run): rerun its spec on it, with --new-spec if asked"
PAIRED_NAMES: tuple[str, ...] = ("delta_auc", "delong_p_holm", "delong_p", "delta_tpr@1%fpr")


@dataclass
class RunRows:
    """The rows findings read: `metrics` as `Store.metrics()` returns them (name, value, ci_low, ci_high, labels, kind),
    `privacy` and `trojan` the per-sample rows of those cells (dicts), `summary` the metric rows of the run's
    privacy-summary cell (best attack, quality-risk correlations, paired comparisons; None when the store has no
    finished one) and `summary_skipped` what it skipped, with why. Derived numbers are read from `summary`, never
    recomputed here."""

    metrics: list[dict[str, Any]]
    privacy: list[dict[str, Any]] = field(default_factory=list)
    trojan: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] | None = None
    summary_skipped: dict[str, int] = field(default_factory=dict)
    n_resamples: int = 1000

    @classmethod
    def from_store(cls, store: Any) -> RunRows:
        """Read every row findings need from a `quantrisk.store.Store` (the summary: its latest finished
        privacy-summary cell, as the report reads it)."""
        cell = store.latest_done_cell("privacy-summary")
        summary = None if cell is None else [m for m in store.metrics(kind="privacy-summary") if m["cell_id"] == cell["id"]]
        return cls(store.metrics(), [r for _, r in store.samples(kind="privacy")],
                   [r for _, r in store.samples(kind="trojan")], summary, dict(cell["skipped"]) if cell else {})

    def named(self, name: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.metrics if m["name"] == name and (kind is None or m.get("kind") == kind)]

    def summary_named(self, *names: str) -> list[dict[str, Any]]:
        """The summary's rows with one of `names` ([] without a summary)."""
        return [m for m in self.summary or [] if m["name"] in names]

    def attacks(self) -> list[str]:
        return list(dict.fromkeys(m["labels"]["attack"] for m in self.named("auc", "privacy")))

    def paired(self) -> list[dict[str, Any]]:
        """The paired comparisons against the baseline precision, as the privacy-summary cell stored them."""
        return self.summary_named(*PAIRED_NAMES)

    def missing_summary(self) -> str | None:
        """Why a claim on the privacy summary's numbers cannot be tested (None when the run has a summary): the store
        has privacy cells but no summary (`NO_SUMMARY`), or no privacy study at all."""
        if self.summary is not None:
            return None
        return NO_SUMMARY if self.named("auc", "privacy") else "no privacy study in this run"


@dataclass
class Finding:
    claim: str
    statement: str
    test: str
    effect: float | None
    ci: list[float] | None
    p: float | None
    verdict: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CLAIMS: dict[str, Callable[[RunRows], Finding]] = {}


def register_claim(claim: str) -> Callable[[Callable[[RunRows], Finding]], Callable[[RunRows], Finding]]:
    """Decorator: add `fn(rows) -> Finding` under `claim` (e.g. "P1"); a duplicate raises."""

    def wrap(fn: Callable[[RunRows], Finding]) -> Callable[[RunRows], Finding]:
        refuse_duplicate("claim", claim, CLAIMS.get(claim), fn)
        CLAIMS[claim] = fn
        return fn

    return wrap


def findings(rows: RunRows) -> list[Finding]:
    """Every registered claim's finding, in registry order."""
    return [fn(rows) for fn in CLAIMS.values()]


def _bits(precision: str) -> int:
    from quantrisk.precision import parse_precision

    return parse_precision(precision).bits


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def best_attack(rows: RunRows) -> str | None:
    """The strongest attack, as the privacy-summary cell stored it (`best_attack_auc`; None without one)."""
    stored = rows.summary_named("best_attack_auc")
    return str(stored[0]["labels"]["attack"]) if stored else None


# ------------------------------------------------------------------ privacy claims


@register_claim("P1")
def p1_quantization_lowers_mi_risk(rows: RunRows) -> Finding:
    statement = "Quantization lowers membership-inference risk."
    test = ("paired ΔAUC (quantized − full precision, same samples) of the strongest attack, 95% paired bootstrap CI; "
            "DeLong p, Holm over precisions × attacks of a model")
    if rows.missing_summary():
        return Finding("P1", statement, test, None, None, None, INCONCLUSIVE, rows.missing_summary())
    attack = best_attack(rows)
    cmp = [m for m in rows.paired() if m["labels"].get("attack") == attack]
    deltas = [m for m in cmp if m["name"] == "delta_auc" and _bits(m["labels"]["precision"]) < _bits(m["labels"]["baseline"])]
    if attack is None or not deltas:
        return Finding("P1", statement, test, None, None, None, INCONCLUSIVE,
                       "no quantized precision with a full-precision baseline on the same samples in this run")
    pk = {_key(m): m["value"] for m in cmp if m["name"] == "delong_p_holm"}
    raw = {_key(m): m["value"] for m in cmp if m["name"] == "delong_p"}
    lower = [m for m in deltas if m["value"] < 0 and pk.get(_key(m), 1) <= ALPHA]
    higher = [m for m in deltas if m["value"] > 0 and pk.get(_key(m), 1) <= ALPHA]
    strongest = min(deltas, key=lambda m: m["value"])
    effect, ci, p = strongest["value"], [strongest["ci_low"], strongest["ci_high"]], pk.get(_key(strongest))
    where = (f"{_fmt(effect)} [{_fmt(ci[0])}, {_fmt(ci[1])}] at {strongest['labels']['precision']} "
             f"({strongest['labels']['model']}; DeLong p {_fmt(raw.get(_key(strongest)))}, Holm {_fmt(p)})")
    names = lambda ms: ", ".join(sorted({f"{m['labels']['precision']} ({m['labels']['model']})" for m in ms}))  # noqa: E731
    every = _all_attacks_summary(rows)
    if lower and not higher:
        return Finding("P1", statement, test, effect, ci, p, HOLDS,
                       f"{attack}: AUC significantly lower at {names(lower)}; largest drop {where}; "
                       f"{len(deltas) - len(lower)} of {len(deltas)} quantized settings show no significant change; {every}")
    if higher:
        return Finding("P1", statement, test, effect, ci, p, NOT,
                       f"{attack}: AUC significantly higher at {names(higher)}" + (f", lower at {names(lower)}" if lower else "")
                       + f"; {every}")
    if all(m["ci_low"] >= -NO_CHANGE_MARGIN and m["ci_high"] <= NO_CHANGE_MARGIN for m in deltas):
        return Finding("P1", statement, test, effect, ci, p, NOT,
                       f"{attack}: every quantized setting's ΔAUC CI lies within ±{NO_CHANGE_MARGIN} (no change that "
                       f"matters); largest drop {where}; {every}")
    return Finding("P1", statement, test, effect, ci, p, INCONCLUSIVE,
                   f"{attack}: no quantized setting differs significantly after Holm, yet some ΔAUC CI reaches beyond "
                   f"±{NO_CHANGE_MARGIN}; largest drop {where}; {every}")


def _all_attacks_summary(rows: RunRows) -> str:
    """How many (model, precision, attack) comparisons of quantized settings are significantly lower / higher."""
    pk = {_key(m): m["value"] for m in rows.paired() if m["name"] == "delong_p_holm"}
    ds = [m for m in rows.paired() if m["name"] == "delta_auc" and _bits(m["labels"]["precision"]) < _bits(m["labels"]["baseline"])]
    low = sum(m["value"] < 0 and pk.get(_key(m), 1) <= ALPHA for m in ds)
    high = sum(m["value"] > 0 and pk.get(_key(m), 1) <= ALPHA for m in ds)
    return f"over every attack, {low} of {len(ds)} quantized comparisons significantly lower, {high} higher (Holm)"


def _key(m: dict[str, Any]) -> tuple[str, ...]:
    lab = m["labels"]
    return tuple(str(lab.get(k, "")) for k in ("model", "seed", "precision", "attack"))


@register_claim("P2")
def p2_zlib_strongest(rows: RunRows) -> Finding:
    statement = "zlib is the strongest membership-inference attack."
    test = ("per (model, precision, seed) cell: DeLong test of zlib vs the best other attack on the same samples, "
            "Holm over cells; effect = mean AUC(zlib) − mean AUC(best other attack)")
    attacks = rows.attacks()
    if "zlib" not in attacks or len(attacks) < 2:
        return Finding("P2", statement, test, None, None, None, INCONCLUSIVE,
                       "zlib was not run" if "zlib" not in attacks else "zlib is the only attack in this run")
    mean = {a: float(np.mean([m["value"] for m in rows.named("auc", "privacy") if m["labels"]["attack"] == a])) for a in attacks}
    others = {a: v for a, v in mean.items() if a != "zlib"}
    rival = max(others, key=others.__getitem__)
    effect = mean["zlib"] - others[rival]
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows.privacy:
        if r.get("kind") == "mi":
            cells[(str(r.get("model")), str(r.get("precision")), str(r.get("seed", "")))].append(r)
    tests = []
    for key, rs in sorted(cells.items()):
        auc = {m["labels"]["attack"]: m["value"] for m in rows.named("auc", "privacy")
               if (m["labels"].get("model"), m["labels"].get("precision"), str(m["labels"].get("seed", ""))) == key}
        if "zlib" not in auc or len(auc) < 2:
            continue
        best_other = max((a for a in auc if a != "zlib"), key=auc.__getitem__)
        ok = [r for r in rs if r.get("zlib") is not None and r.get(best_other) is not None]
        y = np.array([int(r["label"]) for r in ok])
        if (y == 1).sum() < 2 or (y == 0).sum() < 2:
            continue
        d = delong_test([r["zlib"] for r in ok], [r[best_other] for r in ok], y)
        tests.append((key, best_other, d))
    if not tests:
        return Finding("P2", statement, test, effect, None, None, INCONCLUSIVE, "no cell with per-sample scores of zlib and another attack")
    adj = holm([t[2].p_value for t in tests])
    beaten = [(t, p) for t, p in zip(tests, adj, strict=True) if t[2].delta < 0 and p <= ALPHA]
    wins = [(t, p) for t, p in zip(tests, adj, strict=True) if t[2].delta > 0 and p <= ALPHA]
    first = sum(t[2].delta >= 0 for t in tests)
    p_min = min(adj)
    summary = f"zlib first in {first} of {len(tests)} cells (mean AUC {_fmt(mean['zlib'])} vs {rival} {_fmt(others[rival])})"
    if beaten:
        who = ", ".join(sorted({f"{t[1]} at {t[0][1]} ({t[0][0]})" for t, _ in beaten}))
        return Finding("P2", statement, test, effect, None, min(p for _, p in beaten), NOT,
                       f"{summary}; significantly beaten by {who}")
    if first * 2 > len(tests) and wins and effect > 0:
        return Finding("P2", statement, test, effect, None, min(p for _, p in wins), HOLDS,
                       f"{summary}; significantly ahead in {len(wins)} cells, never significantly behind")
    return Finding("P2", statement, test, effect, None, p_min, INCONCLUSIVE,
                   f"{summary}; no significant difference from the best other attack after Holm")


@register_claim("P3")
def p3_quality_risk_correlation(rows: RunRows) -> Finding:
    statement = "Code-completion quality and MI risk correlate positively across precisions."
    test = ("Spearman ρ of CodeBLEU (continuation) vs the strongest attack's AUC over (model, precision) points, "
            "ranks within each model when several (model as a fixed effect); two-sided permutation p, exact at small n "
            "(within models); as the privacy summary computed it, the method in why")
    if rows.missing_summary():
        return Finding("P3", statement, test, None, None, None, INCONCLUSIVE, rows.missing_summary())
    r, p = (next(iter(rows.summary_named(n)), None) for n in ("spearman_r", "spearman_p"))
    if r is None or p is None:
        notes = [k for k in rows.summary_skipped if k.startswith(("spearman correlation:", "quality-risk correlation",
                                                                 "best attack"))]
        return Finding("P3", statement, test, None, None, None, INCONCLUSIVE,
                       "; ".join(notes) or "the privacy summary holds no quality-risk correlation")
    lab = r["labels"]
    pooled = lab.get("p_method", "").startswith("within-model")
    detail = (f"{'pooled within-model ' if pooled else ''}ρ = {_fmt(r['value'])} over {lab.get('n')} points, "
              f"{lab.get('p_method', '')} p = {_fmt(p['value'])}")
    per_model = {m["labels"]["model"]: m for m in rows.summary_named("model_spearman_r")}
    per_p = {m["labels"]["model"]: m for m in rows.summary_named("model_spearman_p")}
    if per_model:
        detail += "; per model: " + "; ".join(
            f"{model}: ρ = {_fmt(m['value'])}, {m['labels'].get('p_method', '')} p = "
            f"{_fmt(per_p[model]['value'] if model in per_p else None)} (n = {m['labels'].get('n')})"
            for model, m in sorted(per_model.items()))
    notes = [k for k in rows.summary_skipped if k.startswith("spearman correlation of ")]
    detail += "".join(f"; {k}" for k in notes)
    if p["value"] <= ALPHA:
        return Finding("P3", statement, test, r["value"], None, p["value"], HOLDS if r["value"] > 0 else NOT, detail)
    smallest = next(iter(rows.summary_named("spearman_p_min")), None)
    why = detail + (f"; with these points the smallest attainable p is {_fmt(smallest['value'])} > {ALPHA}"
                    if smallest is not None and smallest["value"] > ALPHA else "; not significant")
    return Finding("P3", statement, test, r["value"], None, p["value"], INCONCLUSIVE, why)


def _mean_by(ms: Iterable[dict[str, Any]], keys: tuple[str, ...] = ("model", "precision")) -> dict[tuple[str, ...], float]:
    acc: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for m in ms:
        acc[tuple(str(m["labels"].get(k, "")) for k in keys)].append(m["value"])
    return {k: float(np.mean(v)) for k, v in acc.items()}


@register_claim("P4")
def p4_larger_quantized_beats_smaller_full(rows: RunRows) -> Finding:
    statement = "A larger quantized model beats a smaller full-precision one on the quality/risk trade-off."
    test = ("every (larger model (≥ 1.5x the parameters) at a quantized precision, smaller model at full precision) pair: ΔCodeBLEU "
            "(per-sample mean, bootstrap CI) and ΔAUC of the strongest attack (bootstrap CI, independent samples); "
            "beats = quality significantly higher and risk not significantly higher")
    if rows.missing_summary():
        return Finding("P4", statement, test, None, None, None, INCONCLUSIVE, rows.missing_summary())
    attack = best_attack(rows)
    size = _mean_by(rows.named("fp16_weight_mb", "privacy"), ("model",))
    if len(size) < 2:
        return Finding("P4", statement, test, None, None, None, INCONCLUSIVE,
                       f"needs at least two models of different sizes; this run has {len(size)}")
    if max(size.values()) < MIN_SIZE_RATIO * min(size.values()):
        return Finding("P4", statement, test, None, None, None, INCONCLUSIVE,
                       f"the models differ in size by less than {MIN_SIZE_RATIO}x ("
                       + ", ".join(f"{m}: {v:.2f} MB fp16" for (m,), v in sorted(size.items())) + ")")
    quality = _per_sample(rows.privacy, "completion", "codebleu")
    scores = _mi_scores(rows.privacy, attack)
    pairs = []
    for (big,), big_mb in size.items():
        for (small,), small_mb in size.items():
            base = baseline_precision(p for (m, p) in quality if m == small)
            if big_mb < MIN_SIZE_RATIO * small_mb or base is None or (small, base) not in scores:
                continue
            for (m, prec) in quality:
                if m != big or _bits(prec) >= 16 or (m, prec) not in scores:
                    continue
                dq = _diff_ci(quality[(m, prec)], quality[(small, base)])
                da = bootstrap_diff(fast_auc, *scores[(m, prec)], *scores[(small, base)], n_resamples=rows.n_resamples)
                pairs.append((f"{m}@{prec} vs {small}@{base}", dq, (da.value, da.low, da.high)))
    if not pairs:
        return Finding("P4", statement, test, None, None, None, INCONCLUSIVE,
                       "no (larger quantized, smaller full-precision) pair with completion and MI samples")
    beats = [p for p in pairs if p[1][1] > 0 and p[2][2] <= 0]
    loses = [p for p in pairs if p[1][2] < 0 or p[2][1] > 0]
    best = max(pairs, key=lambda p: p[1][0] - p[2][0])
    desc = lambda p: f"{p[0]}: ΔCodeBLEU {_fmt(p[1][0])} [{_fmt(p[1][1])}, {_fmt(p[1][2])}], ΔAUC {_fmt(p[2][0])} [{_fmt(p[2][1])}, {_fmt(p[2][2])}]"  # noqa: E731
    pick = beats[0] if beats else best
    effect, ci = pick[1][0], [pick[1][1], pick[1][2]]
    if beats:
        return Finding("P4", statement, test, effect, ci, None, HOLDS, f"{len(beats)} of {len(pairs)} pairs: " + desc(pick))
    if len(loses) == len(pairs):
        return Finding("P4", statement, test, effect, ci, None, NOT,
                       f"every pair has significantly lower quality or higher risk; best: {desc(best)}")
    return Finding("P4", statement, test, effect, ci, None, INCONCLUSIVE,
                   f"no pair is significantly better in quality without more risk; best: {desc(best)}")


def _per_sample(samples: Sequence[dict[str, Any]], kind: str, field_: str) -> dict[tuple[str, str], np.ndarray]:
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in samples:
        if r.get("kind") == kind and r.get(field_) is not None:
            acc[(str(r.get("model")), str(r.get("precision")))].append(float(r[field_]))
    return {k: np.array(v) for k, v in acc.items()}


def _mi_scores(samples: Sequence[dict[str, Any]], attack: str | None) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    acc: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for r in samples:
        if attack and r.get("kind") == "mi" and r.get(attack) is not None:
            acc[(str(r.get("model")), str(r.get("precision")))].append((float(r[attack]), int(r["label"])))
    return {k: (np.array([v[0] for v in vs]), np.array([v[1] for v in vs])) for k, vs in acc.items()}


def _diff_ci(a: np.ndarray, b: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) − mean(b) with a 95% percentile bootstrap CI, a and b resampled independently."""
    rng = np.random.default_rng(seed)
    d = a[rng.integers(0, a.size, (n, a.size))].mean(axis=1) - b[rng.integers(0, b.size, (n, b.size))].mean(axis=1)
    lo, hi = np.quantile(d, [0.025, 0.975])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def verdict_lines(found: Sequence[Finding]) -> list[str]:
    """One terminal line per finding: `P1 holds — statement (effect, CI, p)`."""
    out = []
    for f in found:
        stats = ", ".join(x for x in (
            f"effect {_fmt(f.effect)}" if f.effect is not None else "",
            f"95% CI [{_fmt(f.ci[0])}, {_fmt(f.ci[1])}]" if f.ci else "",
            f"p = {_fmt(f.p)}" if f.p is not None else "") if x)
        out.append(f"{f.claim} {f.verdict} — {f.statement}" + (f" ({stats})" if stats else ""))
    return out


# the trojan claims (T1-T3) register themselves in CLAIMS, after the privacy ones
from quantrisk import findings_trojan  # noqa: E402, F401
