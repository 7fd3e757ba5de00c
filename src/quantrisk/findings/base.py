"""What every claim shares: the rows it reads (`RunRows`), its answer (`Finding`), the claim registry and the one
decision standard (docs/METRICS.md, "Decision standard").

The standard, for a claim whose effect has an interval [lo, hi] and a margin m (`quantrisk.margins.MARGINS`):

- per comparison (`classify`): **holds** when the whole interval is beyond the margin on the claim's side;
  **does not hold** when it lies inside ±m (equivalence) or wholly on the opposite side of 0 (a significant opposite
  effect); else **inconclusive**. The same rule in both directions, so at an effect exactly at the margin each wrong
  conclusive verdict has probability ≤ α/2.
- over a claim's family (`family_verdict`; every model × precision × ... the claim covers): intervals are
  simultaneous (Bonferroni, level 1 − α/m for m comparisons), p-values Holm-adjusted. A comparison beyond the margin
  on the opposite side refutes the claim; else one that holds makes it hold; else it does not hold when every
  comparison does not; else inconclusive.
- **not testable** when a precondition fails (no baseline, the backdoor did not implant, the member/non-member set
  fails the blind check, the attack shows no signal, too few units, a field the rule needs is missing); why says
  which.
- replication (`seed_interval`): a claim is decided on seed-level effects; with k ≥ 2 seeds the interval is the union
  of the pooled within-seed interval and the t interval (k − 1 df) of the k seed effects, so neither agreeing seeds
  nor a lucky split make it collapse; every verdict prints its seed count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from quantrisk import formats
from quantrisk.margins import ALPHA, MARGINS
from quantrisk.registry import Registry

HOLDS, NOT, INCONCLUSIVE, NOT_TESTABLE = "holds", "does not hold", "inconclusive", "not testable"
VERDICTS: tuple[str, ...] = (HOLDS, NOT, INCONCLUSIVE, NOT_TESTABLE)
NO_SUMMARY = "store has no privacy summary (an older run): rerun its spec on it, with --new-spec if asked"
PAIRED_NAMES: tuple[str, ...] = ("delta_auc", "delong_se", "delong_p_holm", "delong_p", "delta_tpr@1%fpr")


@dataclass
class RunRows:
    """The rows findings read: `metrics` as `Store.metrics()` returns them (name, value, ci_low, ci_high, labels, kind),
    `privacy` and `trojan` the per-sample rows of those cells (dicts), `summary` the metric rows of the run's
    privacy-summary cell (best attack, quality-risk correlations, paired comparisons; None when the store has no
    finished one) and `summary_skipped` what it skipped, with why."""

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
        """Why a claim on the privacy summary's numbers cannot be tested (None when the run has a summary)."""
        if self.summary is not None:
            return None
        return NO_SUMMARY if self.named("auc", "privacy") else "no privacy study in this run"


@dataclass
class Finding:
    """A claim's answer. `ci` is the interval the verdict used, described by `ci_label` (simultaneous over the
    family, or unadjusted); `p` is Holm-adjusted where the claim runs several tests; `n_seeds` the replicates the
    verdict rests on; `utility` the utility change beside the risk change it reports."""

    claim: str
    statement: str
    test: str
    effect: float | None
    ci: list[float] | None
    p: float | None
    verdict: str
    why: str
    n_seeds: int | None = None
    ci_label: str = "95% CI"
    utility: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Comparison:
    """One comparison of a claim's family: `effect` with its interval at the family's level, raw `p`, units `n`,
    seeds, the utility change of the same cell and whether that precision is degraded."""

    where: str
    effect: float
    low: float
    high: float
    p: float
    n: int
    n_seeds: int
    utility: str = ""
    degraded: bool = False


CLAIMS: Registry[Callable[[RunRows], Finding]] = Registry("claim")


def register_claim(claim: str) -> Callable[[Callable[[RunRows], Finding]], Callable[[RunRows], Finding]]:
    """Decorator: add `fn(rows) -> Finding` under `claim` (e.g. "P1"); a name taken by another function raises
    `ValueError` (`quantrisk.registry`)."""

    def wrap(fn: Callable[[RunRows], Finding]) -> Callable[[RunRows], Finding]:
        return CLAIMS.add(claim, fn)

    return wrap


def findings(rows: RunRows) -> list[Finding]:
    """Every registered claim's finding, in registry order."""
    return [fn(rows) for fn in CLAIMS.values()]


def margin(name: str) -> float:
    return MARGINS[name].value


def classify(low: float, high: float, m: float, direction: int) -> str:
    """The verdict of one comparison with interval [low, high] and margin m: direction −1 (the claim says the effect
    is < 0), +1 (> 0) or 0 (a shift either way). See the module doc."""
    if direction == 0:
        if low > m or high < -m:
            return HOLDS
        return NOT if -m < low and high < m else INCONCLUSIVE
    lo, hi = (low, high) if direction > 0 else (-high, -low)
    if lo > m:
        return HOLDS
    if hi < 0 or (-m < lo and hi < m):
        return NOT
    return INCONCLUSIVE


def refutes(low: float, high: float, m: float, direction: int) -> bool:
    """Whether the interval lies wholly beyond the margin on the side opposite to the claim's."""
    return direction != 0 and ((high < -m) if direction > 0 else (low > m))


def family_verdict(comparisons: Sequence[Comparison], m: float, direction: int) -> tuple[str, list[Comparison]]:
    """The claim's verdict over its deciding comparisons (degraded ones excluded by the caller) and the comparisons
    that decided it."""
    cls = [classify(c.low, c.high, m, direction) for c in comparisons]
    against = [c for c in comparisons if refutes(c.low, c.high, m, direction)]
    if against:
        return NOT, against
    held = [c for c, v in zip(comparisons, cls, strict=True) if v == HOLDS]
    if held:
        return HOLDS, held
    if comparisons and all(v == NOT for v in cls):
        return NOT, list(comparisons)
    return INCONCLUSIVE, [c for c, v in zip(comparisons, cls, strict=True) if v == INCONCLUSIVE]


def _family_of(comps: Sequence[Comparison], classes: Sequence[str]) -> tuple[str, list[Comparison]]:
    held = [c for c, v in zip(comps, classes, strict=True) if v == HOLDS]
    if held:
        return HOLDS, held
    if comps and all(v == NOT for v in classes):
        return NOT, list(comps)
    return INCONCLUSIVE, [c for c, v in zip(comps, classes, strict=True) if v == INCONCLUSIVE]


def family_level(m: int) -> float:
    """Bonferroni confidence level of each of m simultaneous intervals (family-wise 1 − ALPHA)."""
    return 1 - ALPHA / max(m, 1)


def z_of(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - (1 - level) / 2))


def seed_interval(est: float, within: tuple[float, float], seed_effects: Sequence[float],
                  level: float) -> tuple[float, float, float]:
    """(est, low, high): `within` is the interval from the pooled within-seed sampling error; with k ≥ 2 seed
    effects the t interval (k − 1 df) of their mean around `est` is joined to it (union), so that the verdict
    rests on the seed-to-seed variation too."""
    lo, hi = within
    k = len(seed_effects)
    if k >= 2:
        from scipy.stats import t

        mean = sum(seed_effects) / k
        sd = math.sqrt(sum((e - mean) ** 2 for e in seed_effects) / (k - 1))
        half = float(t.ppf(1 - (1 - level) / 2, k - 1)) * sd / math.sqrt(k)
        lo, hi = min(lo, est - half), max(hi, est + half)
    return est, lo, hi


def seed_p(est: float, se_within: float, seed_effects: Sequence[float]) -> float:
    """Two-sided p of est = 0 matching `seed_interval`: the larger of the normal p (within-seed se) and, with k ≥ 2
    seeds, the one-sample t p of the seed effects."""
    from scipy.stats import norm

    p = 1.0 if se_within <= 0 and est == 0 else (0.0 if se_within <= 0 else float(2 * norm.sf(abs(est) / se_within)))
    return max(p, seed_t_p(seed_effects))


def seed_t_p(seed_effects: Sequence[float]) -> float:
    """Two-sided one-sample t p (k − 1 df) that the mean of k ≥ 2 seed effects is 0; 0.0 with fewer seeds (no
    between-seed test: the within-seed p decides alone)."""
    from scipy.stats import t

    k = len(seed_effects)
    if k < 2:
        return 0.0
    mean = sum(seed_effects) / k
    sd = math.sqrt(sum((e - mean) ** 2 for e in seed_effects) / (k - 1))
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * t.sf(abs(mean) / (sd / math.sqrt(k)), k - 1))


def bits(precision: str) -> int | None:
    """Weight bits of a precision string (None when it does not parse)."""
    try:
        from quantrisk.precision import parse_precision

        return parse_precision(precision).bits
    except Exception:  # noqa: BLE001 - a stored label from another version: not a known precision
        return None


def is_quantized(precision: str) -> bool:
    """True for a precision that quantizes weights (not a plain dtype: fp32, bf16 and fp16 are not quantized)."""
    try:
        from quantrisk.precision import parse_precision

        return not parse_precision(precision).is_float
    except Exception:  # noqa: BLE001
        return False


def fmt(x: float | None) -> str:
    """A number in a finding's text, in the report's one format (`quantrisk.formats.number`)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else formats.number(float(x))


def seeds_note(n_seeds: int) -> str:
    """What a verdict's replication is: `n_seeds = 3`, or with one seed its scope."""
    if n_seeds == 1:
        return "n_seeds = 1 (one training run and split: the verdict is about this run, not replicated)"
    return f"n_seeds = {n_seeds}"


def ci_label(m: int) -> str:
    return "95% CI" if m <= 1 else f"simultaneous 95% CI (Bonferroni over {m})"


def describe(c: Comparison) -> str:
    u = f"; utility {c.utility}" if c.utility else ""
    return f"{c.where}: {fmt(c.effect)} [{fmt(c.low)}, {fmt(c.high)}] (n = {c.n}, seeds {c.n_seeds}{u})"


def decide(claim: str, statement: str, test: str, comps: list[Comparison], m: float, direction: int,
           holm_p: Sequence[float], *, degraded: Sequence[Comparison] = (), extra: str = "",
           classes: list[str] | None = None) -> Finding:
    """The Finding of a claim from its deciding comparisons (intervals at the family level already), their
    Holm-adjusted p-values (same order) and the degraded comparisons (reported, not credited). `classes`: each
    comparison's verdict when the claim classifies them itself (then: any holds -> holds, all not -> not)."""
    verdict, decisive = family_verdict(comps, m, direction) if classes is None else _family_of(comps, classes)
    n_seeds = max((c.n_seeds for c in comps), default=0)
    pick = max(decisive or comps, key=lambda c: abs(c.effect))
    p = holm_p[comps.index(pick)]
    cls = classes if classes is not None else [classify(c.low, c.high, m, direction) for c in comps]
    counts = {v: cls.count(v) for v in (HOLDS, NOT, INCONCLUSIVE)}
    why = (f"{len(comps)} comparison{'s' if len(comps) != 1 else ''} (margin ±{fmt(m)}): {counts[HOLDS]} beyond the "
           f"margin, {counts[NOT]} within it or opposite, {counts[INCONCLUSIVE]} undecided; "
           f"{'deciding' if verdict != INCONCLUSIVE else 'largest'}: {describe(pick)}, Holm p {formats.pvalue(p)}")
    if degraded:
        why += "; degraded (utility collapsed, risk change not credited): " + "; ".join(describe(c) for c in degraded)
    why += f"; {seeds_note(n_seeds)}" + (f"; {extra}" if extra else "")
    return Finding(claim, statement, test, pick.effect, [pick.low, pick.high], p, verdict, why, n_seeds,
                   ci_label(len(comps)), pick.utility)


def untestable(claim: str, statement: str, test: str, why: str, n_seeds: int | None = None) -> Finding:
    return Finding(claim, statement, test, None, None, None, NOT_TESTABLE, why, n_seeds)


def verdict_lines(found: Sequence[Finding]) -> list[str]:
    """One terminal line per finding: `P1 holds — statement (effect, CI, p, seeds)`."""
    out = []
    for f in found:
        stats = ", ".join(x for x in (
            f"effect {fmt(f.effect)}" if f.effect is not None else "",
            f"{f.ci_label} [{fmt(f.ci[0])}, {fmt(f.ci[1])}]" if f.ci else "",
            f"p = {formats.pvalue(f.p)}" if f.p is not None else "",
            f"n_seeds = {f.n_seeds}" if f.n_seeds else "") if x)
        out.append(f"{f.claim} {f.verdict} — {f.statement}" + (f" ({stats})" if stats else ""))
    return out
