"""Report sections of the privacy study: the MI AUC tables, the paired comparisons and the privacy plots.

The study plugs its sections into the report from below: each is registered in the report's section registry
(`@section(name, "studies")`, in the order they appear on the page), and `quantrisk.studies` imports this module
where the application is assembled. Every section is empty when the store has no privacy cells (no AUC table).
"""

from __future__ import annotations

from typing import Any

from quantrisk import formats as F
from quantrisk.findings import RunRows
from quantrisk.privacy.attacks import ATTACKS, DEFAULT_K, Attack
from quantrisk.report import plots
from quantrisk.report.glossary import define
from quantrisk.report.sections import Section, SectionContext, auc_margin, image_section, plot, section
from quantrisk.report.tables import Table, privacy_extras_table, privacy_table
from quantrisk.report.truncation import privacy_truncation


def attack_gloss(attack: Attack) -> str:
    """The glossary entry of an MI attack: the first paragraph of its function's docstring (formula and paper)."""
    first = (attack.fn.__doc__ or attack.description).strip().split("\n\n")[0]
    k = f" k = {DEFAULT_K:g} by default." if attack.takes_k else ""
    ell = " ℓ: a token's log-probability under the model." if "ℓ" in first else ""
    return "MI attack: " + " ".join(first.split()) + k + ell


for _attack in ATTACKS.values():  # one entry per registered attack: a new attack brings its own
    define(_attack.name, attack_gloss(_attack), (f"{_attack.name}-{DEFAULT_K:g}",) if _attack.takes_k else ())


def privacy_auc_table(c: SectionContext) -> Table | None:
    """The MI AUC table (once per report): the privacy sections appear only when it exists."""
    return c.once("privacy", lambda: privacy_table(c.store))


def _correlation_text(stats: dict[str, Any]) -> str:
    if not stats:
        return ""
    parts = []
    for name in ("pearson", "spearman"):
        s = stats.get(name, {})
        parts.append(f"{name.title()} r = {F.bound(s['r'], signed=False)} (p = {F.pvalue(s['p'])}, "
                     f"{s.get('method', '')})" if "r" in s else f"{name.title()}: {s.get('note', 'n/a')}")
    return f"Correlation of CodeBLEU with the AUC of the strongest attack ({stats['attack']}) over {stats['n']} " \
           f"(model, precision) points: " + "; ".join(parts) + ". Positive r: better quality goes with more leakage."


def margin_reading(low: float | None, high: float | None, margin: float) -> str:
    """Where a ΔAUC interval lies against ±margin: `beyond` (wholly outside, one side), `within` (wholly inside:
    no change), `straddles` (neither), `—` without an interval."""
    if low is None or high is None:
        return "—"
    if low > margin or high < -margin:
        return "beyond"
    if -margin <= low and high <= margin:
        return "within"
    return "straddles"


def paired_table(rows: RunRows, min_nonmembers: int | None = None) -> Table | None:
    """Each precision vs the full-precision baseline on the same samples: ΔAUC [95% paired bootstrap CI,
    unadjusted], DeLong p (raw and Holm-adjusted), where the CI lies against the margin, and ΔTPR@1%FPR where
    the non-member count resolves 1% FPR. Sorted per model by |ΔAUC|, largest first; rows whose CI lies beyond
    the margin are highlighted."""
    got: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}
    for m in rows.paired():
        lab = m["labels"]
        key = (lab.get("model", ""), lab.get("seed", ""), lab.get("baseline", ""), lab.get("precision", ""),
               lab.get("attack", ""))
        got.setdefault(key, {})[m["name"]] = m
    if not got:
        return None
    margin = auc_margin()
    tpr_ok = min_nonmembers is None or min_nonmembers >= 100
    cols = ["model", "seed", "baseline", "precision", "attack", "ΔAUC [95% CI, unadj.]", f"vs ±{margin:g}",
            "DeLong p", "p (Holm)"] + (["ΔTPR@1%FPR [95% CI, unadj.]"] if tpr_ok else [])
    out = Table("Paired comparisons against the full-precision baseline (same samples)", cols, keys=5)

    def order(kv: tuple[tuple[str, ...], dict[str, dict[str, Any]]]) -> tuple[Any, ...]:
        d = kv[1].get("delta_auc")
        return (kv[0][0], kv[0][1], -abs(d["value"]) if d else 0.0, kv[0][3], kv[0][4])

    for key, m in sorted(got.items(), key=order):
        d = m.get("delta_auc")
        reading = margin_reading(d["ci_low"], d["ci_high"], margin) if d else "—"
        row = [*key, F.with_ci(d["value"], d["ci_low"], d["ci_high"], signed=True) if d else None, reading,
               F.pvalue(m["delong_p"]["value"]) if "delong_p" in m else None,
               F.pvalue(m["delong_p_holm"]["value"]) if "delong_p_holm" in m else None]
        if tpr_ok:
            t = m.get("delta_tpr@1%fpr")
            row.append(F.with_ci(t["value"], t["ci_low"], t["ci_high"], signed=True) if t else None)
        out.rows.append(row)
        out.highlight.append(reading == "beyond")
    n_beyond = sum(out.highlight)
    out.notes.append(f"{n_beyond} of {len(out.rows)} comparisons have a ΔAUC CI wholly beyond ±{margin:g} "
                     f"(highlighted); `within`: the whole CI inside ±{margin:g} (no change); `straddles`: neither. "
                     "The CIs are unadjusted; the Findings judge by the Holm-adjusted p.")
    if not tpr_ok:
        out.notes.append(f"ΔTPR at 1% FPR left out: with {min_nonmembers} non-members the smallest FPR above 0 is "
                         f"1/{min_nonmembers} = {F.prob(1 / min_nonmembers)}, so 1% FPR is not resolved.")
    return out


@section("privacy", "studies")
def _privacy(c: SectionContext) -> list[Section]:
    auc_t = privacy_auc_table(c)
    if auc_t is None:
        return []
    rest_t = privacy_extras_table(c.store, c.n_non)
    return [Section("Privacy study", "MI AUC per attack with its 95% bootstrap CI (unadjusted); above 0.5 the attack "
                    "tells members from non-members. " + privacy_truncation(c.store), c.slim(auc_t, "the privacy tables"),
                    tables=[c.slim(rest_t, "the privacy tables")] if rest_t is not None else [])]


@section("paired comparisons", "studies")
def _paired(c: SectionContext) -> list[Section]:
    pc = paired_table(c.rows, c.n_non) if privacy_auc_table(c) is not None else None
    return [] if pc is None else [
        Section("Paired comparisons", "Each precision against the full-precision baseline on the same samples, "
                "largest |ΔAUC| first: paired bootstrap CI (unadjusted); DeLong's test, Holm-adjusted over the "
                "precisions × attacks of a model.", c.slim(pc, "the paired comparisons", ("seed", "baseline")))]


def _privacy_plot(c: SectionContext, draw: Any) -> bytes | None:
    """`draw()` when the run has privacy cells (an AUC table), else None."""
    return None if privacy_auc_table(c) is None else draw()


@plot("delta auc vs bits", "ΔAUC vs bits", "Change of each attack's AUC against the full-precision baseline; marker "
      "shape = back-end, band = 95% paired bootstrap CI of the change (same samples; where a precision has none, its "
      "own AUC CI shifted by the baseline).", file="delta_auc_vs_bits.png")
def _delta_auc(c: SectionContext) -> bytes | None:
    return _privacy_plot(c, lambda: plots.delta_auc_vs_bits(c.store, c.rows.paired()))


@plot("tpr vs bits", "TPR at low FPR vs bits", lambda c: plots.tpr_resolution_text(c.n_non))
def _tpr(c: SectionContext) -> bytes | None:
    return _privacy_plot(c, lambda: plots.tpr_vs_bits(c.store, c.n_non))


@plot("roc curves", "ROC curves", lambda c: f"Strongest attack: {plots.best_attack(c.store)}; log–log axes (Carlini "
      "et al. 2022), AUC of each curve in the legend, the diagonal is chance. " + plots.tpr_resolution_text(c.n_non),
      file="roc.png")
def _roc(c: SectionContext) -> bytes | None:
    return _privacy_plot(c, lambda: plots.roc_curves(c.store))


@plot("auc vs exposure", "AUC vs exposure", "Members seen k times (exposure-regime zoo models) against all "
      "non-members; band = 95% bootstrap CI.")
def _exposure(c: SectionContext) -> bytes | None:
    return _privacy_plot(c, lambda: plots.auc_vs_exposure(c.store))


@section("quality vs risk", "studies")
def _quality(c: SectionContext) -> list[Section]:
    if privacy_auc_table(c) is None:
        return []
    img, stats = plots.quality_vs_risk(c.store)
    return image_section("Quality vs privacy risk", _correlation_text(stats), "codebleu_vs_auc.png", img)
