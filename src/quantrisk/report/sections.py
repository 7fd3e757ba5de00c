"""The report's sections, one registered function each (`SECTIONS`, `quantrisk.registry.Registry`): `fn(ctx) ->
list[Section]`, empty when the store has no data for it; `collect_sections` runs them in report order. A new
section is one function with `@section(name, part)`, a plot one function with `@plot(name, title, text)`; its place is its registration order within
its part (head: bottom line, setup, findings; studies: the pretrained models here, then each study's tables and
plots, registered from below by its package's `report` module (`quantrisk.privacy.report`,
`quantrisk.trojan.report`, `quantrisk.qattack.report`), which `quantrisk.studies` imports: this package imports no
study; body: the run's own sections (run summary, failed cells, ...); tail: the environment).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
)
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


def auc_margin() -> float:
    """The ΔAUC decision margin of the Findings (no change: the whole CI within ±margin)."""
    try:
        from quantrisk.margins import MARGINS  # type: ignore[import-not-found]

        return float(MARGINS["auc"].value)
    except ImportError:
        from quantrisk import findings as _f

        return float(_f.NO_CHANGE_MARGIN)


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
    non-member count, the columns the body's tables dropped as constant (the setup lists them), and what a study's
    sections compute once per report (`once`)."""

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

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """`make()` computed once per report under `key` (a study's main table, which its other sections test for)."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


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


def image_section(title: str, text: str, name: str, img: bytes | None) -> list[Section]:
    """A section of one image (`name`, PNG bytes `img`); none when there is no image."""
    return [Section(title, text, None, (name, img))] if img else []


PlotFn = Callable[[SectionContext], "bytes | None"]


def plot(name: str, title: str, text: str | Callable[[SectionContext], str] = "", part: str = "studies",
         file: str | None = None) -> Callable[[PlotFn], PlotFn]:
    """Decorator: register `fn(ctx) -> PNG bytes | None` (None: the store lacks its data) as the report section
    `name` in `part`: one image titled `title`, with `text` (or `text(ctx)`) beneath, saved as `file` (default:
    the name, dashed, `.png`). A plot is this one function: it may call a drawing function of `report.plots` or
    draw itself with `plots.pyplot()` / `plots.png()`."""
    image = file or re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ".png"

    def wrap(fn: PlotFn) -> PlotFn:
        def draw(c: SectionContext) -> list[Section]:
            img = fn(c)
            return image_section(title, text(c) if callable(text) else text, image, img) if img else []

        draw.__module__, draw.__qualname__ = fn.__module__, fn.__qualname__  # the duplicate rule compares these
        section(name, part)(draw)
        return fn

    return wrap


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


