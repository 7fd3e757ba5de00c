"""The report's sections, one registered function each (`SECTIONS`, `quantrisk.registry.Registry`): `fn(ctx) ->
list[Section]`, empty when the store has no data for it; `collect_sections` runs them in report order. A new
section (a table or a plot) is one function with `@section(name, part)`; its place is its registration order within
its part (head: bottom line, setup, findings; studies: each study's tables and plots, the built-in ones here, a
study package's own registered from its `report` module (e.g. `quantrisk.qattack.report`), which
`quantrisk.studies` imports; body: the run's own sections (run summary, failed cells, ...); tail: the environment).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quantrisk import formats as F
from quantrisk.findings import RunRows
from quantrisk.registry import Registry
from quantrisk.report import plots
from quantrisk.report.headline import study_headlines
from quantrisk.report.setup import constant_columns, drop_columns, nonmember_counts, setup_table
from quantrisk.report.tables import (
    Table,
    cells_table,
    environment_table,
    failures_table,
    generic_table,
    memory_table,
    privacy_extras_table,
    privacy_table,
    trojan_full_table,
    trojan_table,
)
from quantrisk.report.truncation import privacy_truncation, trojan_truncation
from quantrisk.store import Store


@dataclass
class Section:
    """One section: text, bullet lines, a table, a second table (folded in <details> in HTML, a sub-heading in
    Markdown), an image (file name, PNG bytes), more tables, and a class for the HTML box."""

    title: str
    text: str = ""
    table: Table | None = None
    image: tuple[str, bytes] | None = None
    lines: list[str] = field(default_factory=list)
    details: Table | None = None
    tables: list[Table] = field(default_factory=list)
    css: str = ""


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


def auc_margin() -> float:
    """The ΔAUC decision margin of the Findings (no change: the whole CI within ±margin)."""
    try:
        from quantrisk.margins import MARGINS  # type: ignore[import-not-found]

        return float(MARGINS["auc"].value)
    except ImportError:
        from quantrisk import findings as _f

        return float(_f.NO_CHANGE_MARGIN)


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


def _bottom_lines(store: Store, heads: list[Any], found: list[dict[str, Any]]) -> list[str]:
    """One plain sentence per study and subject (from `headline`: its `bottom_lines` when it has one), then the
    tally of the claims."""
    from quantrisk.report import headline

    custom = getattr(headline, "bottom_lines", None)
    lines = list(custom(store, heads, found)) if callable(custom) else [
        f"{h.study.title()} · {h.subject}: {h.sentence}" for h in heads]
    if found:
        tally: dict[str, list[str]] = {}
        for f in found:
            tally.setdefault(str(f.get("verdict")), []).append(str(f.get("claim")))
        lines.append(f"Claims tested on this run ({len(found)}): " + "; ".join(
            f"{v} {', '.join(c)}" for v, c in tally.items()) + " (see Findings).")
    return lines


def findings_table(found: list[dict[str, Any]]) -> Table:
    """One row per claim: verdict, statement, and the evidence (why, effect, CI with its label, p) in words; the
    utility change beside it where the claim reports one."""
    from quantrisk.report.headline import finding_evidence

    util = any(f.get("utility") for f in found)
    cols = ["claim", "verdict", "statement", "evidence"] + (["utility"] if util else [])
    t = Table("Findings", cols, [[f.get("claim"), f.get("verdict"), f.get("statement"), finding_evidence(f)]
                                 + ([f.get("utility") or ""] if util else []) for f in found], keys=2)
    t.wrap = True
    return t


def standard_text(margin: float) -> str:
    """The page's one statistical standard, stated once (the Findings section)."""
    return ("Standard for this page: intervals are 95%. A claim's verdict comes from the test named in its row; "
            "where a claim runs several tests, their p-values are Holm-adjusted over the family at α = 0.05, and "
            "\"significant\" means that adjusted p ≤ 0.05, nothing else. The CI printed with a finding is the one "
            "its verdict used, labelled as such; intervals in the tables below are unadjusted and say so, so an "
            "unadjusted CI that excludes 0 beside an adjusted p above 0.05 is not a finding. No change: the "
            f"whole interval within ±{margin:g} AUC (±0.1 ASR). Every interval covers evaluation-sample noise "
            "only: the models are fixed, one training run per seed.")


@dataclass
class SectionContext:
    """What a section function reads: the store, its rows, the findings, the per-study headlines, the smallest
    non-member count, and the columns the body's tables dropped as constant (the setup lists them)."""

    store: Store
    rows: RunRows
    found: list[dict[str, Any]]
    heads: list[Any]
    n_non: int | None
    constants: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    def slim(self, t: Table, where: str, candidates: tuple[str, ...] = ("seed",)) -> Table:
        """`t` without its constant `candidates` columns (recorded under `where` for the setup table)."""
        const = constant_columns(t, candidates)
        if const:
            self.constants[where] = const
            t = drop_columns(t, list(const))
        return t

    def privacy_table(self) -> Table | None:
        """The MI AUC table (once per report): the privacy sections appear only when it exists."""
        if "privacy" not in self.cache:
            self.cache["privacy"] = privacy_table(self.store)
        return self.cache["privacy"]

    def trojan_table(self) -> Table | None:
        """The trojan table (once per report): the trojan sections appear only when it exists."""
        if "trojan" not in self.cache:
            self.cache["trojan"] = trojan_table(self.store)
        return self.cache["trojan"]


SectionFn = Callable[[SectionContext], list[Section]]
# name -> section function, in report order within its part: "head" (bottom line, setup, findings; run after the
# others, whose tables record the constant columns the setup lists), "studies", "body", "tail"
SECTIONS: Registry[SectionFn] = Registry("report section")
PARTS: dict[str, str] = {}
PART_ORDER = ("head", "studies", "body", "tail")  # on the page; the head is computed last


def section(name: str, part: str = "body") -> Callable[[SectionFn], SectionFn]:
    """Decorator: register `fn(ctx) -> list[Section]` (none when the store has no data for it) as report section
    `name` in `part` (one of `PART_ORDER`); a name taken by another function raises `ValueError`."""
    if part not in PART_ORDER:
        raise ValueError(f"report section {name!r}: unknown part {part!r}; known: {', '.join(PART_ORDER)}")

    def wrap(fn: SectionFn) -> SectionFn:
        SECTIONS.add(name, fn)
        PARTS[name] = part
        return fn

    return wrap


def _image(title: str, text: str, name: str, img: bytes | None) -> list[Section]:
    return [Section(title, text, None, (name, img))] if img else []


@section("bottom line", "head")
def _bottom_line(c: SectionContext) -> list[Section]:
    if not (c.heads or c.found):
        return []
    return [Section("Bottom line", "", lines=_bottom_lines(c.store, c.heads, c.found), css="bottom")]


@section("setup", "head")
def _setup(c: SectionContext) -> list[Section]:
    return [Section("Setup", "", setup_table(c.store, c.constants))]


@section("findings", "head")
def _findings(c: SectionContext) -> list[Section]:
    if not c.found:
        return []
    tests = Table("Tests used", ["claim", "test"], [[f.get("claim"), f.get("test")] for f in c.found])
    tests.wrap = True
    return [Section("Findings", standard_text(auc_margin()), findings_table(c.found), details=tests)]


@section("largest change", "head")
def _largest_change(c: SectionContext) -> list[Section]:
    if not c.heads:
        return []
    return [Section("Largest change per study", "Per study and subject: the baseline and the largest change against "
                    "it with its 95% CI (unadjusted, labelled so). A change is called significant only by the page's "
                    "standard (Holm-adjusted p ≤ 0.05, as in the Findings).",
                    lines=[h.line() for h in c.heads])]


@section("pretraining", "studies")
def _pretraining(c: SectionContext) -> list[Section]:
    gt = generic_table(c.store, "pretrain", "Pretrained zoo models (mean NLL in nats/token)", ("model", "role"))
    return [] if gt is None else [
        Section("Pretraining", "Member vs non-member NLL: the gap is what membership inference exploits.", gt)]


@section("privacy", "studies")
def _privacy(c: SectionContext) -> list[Section]:
    auc_t = c.privacy_table()
    if auc_t is None:
        return []
    rest_t = privacy_extras_table(c.store, c.n_non)
    return [Section("Privacy study", "MI AUC per attack with its 95% bootstrap CI (unadjusted); above 0.5 the attack "
                    "tells members from non-members. " + privacy_truncation(c.store), c.slim(auc_t, "the privacy tables"),
                    tables=[c.slim(rest_t, "the privacy tables")] if rest_t is not None else [])]


@section("paired comparisons", "studies")
def _paired(c: SectionContext) -> list[Section]:
    pc = paired_table(c.rows, c.n_non) if c.privacy_table() is not None else None
    return [] if pc is None else [
        Section("Paired comparisons", "Each precision against the full-precision baseline on the same samples, "
                "largest |ΔAUC| first: paired bootstrap CI (unadjusted); DeLong's test, Holm-adjusted over the "
                "precisions × attacks of a model.", c.slim(pc, "the paired comparisons", ("seed", "baseline")))]


@section("delta auc vs bits", "studies")
def _delta_auc(c: SectionContext) -> list[Section]:
    return [] if c.privacy_table() is None else _image(
        "ΔAUC vs bits", "Change of each attack's AUC against the full-precision baseline; marker shape = back-end, "
        "band = 95% paired bootstrap CI of the change (same samples; where a precision has none, its own AUC CI "
        "shifted by the baseline).", "delta_auc_vs_bits.png", plots.delta_auc_vs_bits(c.store, c.rows.paired()))


@section("tpr vs bits", "studies")
def _tpr(c: SectionContext) -> list[Section]:
    return [] if c.privacy_table() is None else _image(
        "TPR at low FPR vs bits", plots.tpr_resolution_text(c.n_non), "tpr_vs_bits.png",
        plots.tpr_vs_bits(c.store, c.n_non))


@section("roc curves", "studies")
def _roc(c: SectionContext) -> list[Section]:
    if c.privacy_table() is None:
        return []
    img = plots.roc_curves(c.store)
    return _image("ROC curves", f"Strongest attack: {plots.best_attack(c.store)}; log–log axes (Carlini et al. 2022), "
                  "AUC of each curve in the legend, the diagonal is chance. " + plots.tpr_resolution_text(c.n_non),
                  "roc.png", img) if img else []


@section("auc vs exposure", "studies")
def _exposure(c: SectionContext) -> list[Section]:
    return [] if c.privacy_table() is None else _image(
        "AUC vs exposure", "Members seen k times (exposure-regime zoo models) against all non-members; band = 95% "
        "bootstrap CI.", "auc_vs_exposure.png", plots.auc_vs_exposure(c.store))


@section("quality vs risk", "studies")
def _quality(c: SectionContext) -> list[Section]:
    if c.privacy_table() is None:
        return []
    img, stats = plots.quality_vs_risk(c.store)
    return _image("Quality vs privacy risk", _correlation_text(stats), "codebleu_vs_auc.png", img)


@section("trojan", "studies")
def _trojan(c: SectionContext) -> list[Section]:
    tt = c.trojan_table()
    return [] if tt is None else [
        Section("Trojan study", "ASR: share of triggered inputs whose output contains the payload keyword; false "
                "triggers (FTR): the same on clean inputs; 95% Wilson intervals and n. ΔASR: against the DAP1 = DAP2 "
                "= full-precision cell (Newcombe 95% interval, unadjusted). PS: mean payload signal. "
                + trojan_truncation(c.store),
                c.slim(tt, "the trojan table", ("model", "DAP1", "seed")), details=trojan_full_table(c.store))]


@section("trojan rates", "studies")
def _trojan_rates(c: SectionContext) -> list[Section]:
    return [] if c.trojan_table() is None else _image(
        "ASR and false triggers per DAP1 × DAP2", "", "trojan_rates.png", plots.trojan_rates(c.store))


@section("payload signal", "studies")
def _payload(c: SectionContext) -> list[Section]:
    return [] if c.trojan_table() is None else _image(
        "Payload signal", "", "payload_signal.png", plots.payload_violins(c.store))


@section("synthetic")
def _synthetic(c: SectionContext) -> list[Section]:
    st = generic_table(c.store, "synthetic", "Synthetic runner cells", ("index", "seed"))
    return [] if st is None else [Section("Synthetic cells", "Runner self-test cells (deterministic values).", st)]


@section("weight memory")
def _memory(c: SectionContext) -> list[Section]:
    mt = memory_table(c.store)
    return [] if mt is None else [
        Section("Weight memory", "", mt, ("weight_memory.png", plots.weight_memory(c.store) or b"") if mt.rows else None)]


@section("run summary")
def _run_summary(c: SectionContext) -> list[Section]:
    counts = c.store.counts()
    return [Section("Run summary", "Cells by status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                    + ".", cells_table(c.store))]


@section("failed cells")
def _failed(c: SectionContext) -> list[Section]:
    ft = failures_table(c.store)
    return [] if ft is None else [Section("Failed cells", "Rerun `quantrisk run` on the same --out to retry them.", ft)]


@section("environment", "tail")
def _environment(c: SectionContext) -> list[Section]:
    et = environment_table(c.store)
    return [] if et is None else [Section("Environment", "", et)]


def collect_sections(store: Store, found: list[dict[str, Any]] | None = None, rows: RunRows | None = None) -> list[Section]:
    """Every section the store has data for, in report order: the registered section functions (`SECTIONS`) of
    the head (bottom line first), the studies, the body and the tail; the head runs last (the other parts' tables
    record the constant columns that the setup lists)."""
    rows = rows or RunRows.from_store(store)
    nonmembers = nonmember_counts(store)
    ctx = SectionContext(store, rows, found or [], study_headlines(store, rows.paired()),
                         min(nonmembers) if nonmembers else None)
    out: dict[str, list[Section]] = {part: [] for part in PART_ORDER}
    for part in (*PART_ORDER[1:], PART_ORDER[0]):
        for name, fn in SECTIONS.items():
            if PARTS[name] == part:
                out[part] += fn(ctx)
    return [s for part in PART_ORDER for s in out[part]]


