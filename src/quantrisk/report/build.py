"""`build_report(store, out_dir)`: report.html (one self-contained file, PNGs embedded as base64) and
report.md (PNGs written beside it, every line at most 100 columns), from the results store alone.

Order: a table of contents; the bottom line (one sentence per study and subject); the setup (models with their
sizes, data and n, seeds, precisions, each study's settings, run date, wall time, code version, environment, and
every column the tables below would repeat on each row); the Findings with the one statistical standard of the
page; the largest change per study; then the studies' tables and plots, weight memory, run summary, failed
cells, the glossary and the full environment. Number formats: `quantrisk.formats`; rendering: `render_md` and
`render_html`.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantrisk import formats as F
from quantrisk.findings import RunRows, findings
from quantrisk.report import plots, render_html, render_md
from quantrisk.report.glossary import glossary_html, glossary_rows, used_terms
from quantrisk.report.headline import finding_line, study_headlines
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
from quantrisk.results import atomic_write_text, made_dir
from quantrisk.store import Store, store_path


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


@dataclass
class Report:
    html: Path
    markdown: Path
    images: list[Path] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)  # what the commands print (findings, then per study)


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


def run_findings(store: Store, rows: RunRows | None = None) -> list[dict[str, Any]]:
    """The claims with verdicts for this run (dicts with `headline.FINDING_KEYS`), from `quantrisk.findings` over the
    store's rows."""
    return [f.to_dict() for f in findings(rows or RunRows.from_store(store))]


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


def collect_sections(store: Store, found: list[dict[str, Any]] | None = None, rows: RunRows | None = None) -> list[Section]:
    """Every section the store has data for, in report order (bottom line first)."""
    rows = rows or RunRows.from_store(store)
    found = found or []
    heads = study_headlines(store, rows.paired())
    nonmembers = nonmember_counts(store)
    n_non = min(nonmembers) if nonmembers else None
    body: list[Section] = []
    constants: dict[str, dict[str, Any]] = {}

    def slim(t: Table, where: str, candidates: tuple[str, ...] = ("seed",)) -> Table:
        const = constant_columns(t, candidates)
        if const:
            constants[where] = const
            t = drop_columns(t, list(const))
        return t

    gt = generic_table(store, "pretrain", "Pretrained zoo models (mean NLL in nats/token)", ("model", "role"))
    if gt is not None:
        body.append(Section("Pretraining", "Member vs non-member NLL: the gap is what membership inference exploits.",
                            gt))
    auc_t = privacy_table(store)
    if auc_t is not None:
        rest_t = privacy_extras_table(store, n_non)
        body.append(Section("Privacy study", "MI AUC per attack with its 95% bootstrap CI (unadjusted); above 0.5 the "
                            "attack tells members from non-members.", slim(auc_t, "the privacy tables"),
                            tables=[slim(rest_t, "the privacy tables")] if rest_t is not None else []))
        pc = paired_table(rows, n_non)
        if pc is not None:
            body.append(Section("Paired comparisons", "Each precision against the full-precision baseline on the same "
                                "samples, largest |ΔAUC| first: paired bootstrap CI (unadjusted); DeLong's test, "
                                "Holm-adjusted over the precisions × attacks of a model.", slim(pc, "the paired comparisons", ("seed", "baseline"))))
        img = plots.delta_auc_vs_bits(store, rows.paired())
        if img:
            body.append(Section("ΔAUC vs bits", "Change of each attack's AUC against the full-precision baseline; "
                                "marker shape = back-end, band = 95% paired bootstrap CI of the change (same "
                                "samples; where a precision has none, its own AUC CI shifted by the baseline).", None,
                                ("delta_auc_vs_bits.png", img)))
        img = plots.tpr_vs_bits(store, n_non)
        if img:
            body.append(Section("TPR at low FPR vs bits", plots.tpr_resolution_text(n_non), None,
                                ("tpr_vs_bits.png", img)))
        img = plots.roc_curves(store)
        if img:
            body.append(Section("ROC curves", f"Strongest attack: {plots.best_attack(store)}; log–log axes (Carlini et "
                                "al. 2022), AUC of each curve in the legend, the diagonal is chance. "
                                + plots.tpr_resolution_text(n_non), None, ("roc.png", img)))
        img = plots.auc_vs_exposure(store)
        if img:
            body.append(Section("AUC vs exposure", "Members seen k times (exposure-regime zoo models) against all "
                                "non-members; band = 95% bootstrap CI.", None, ("auc_vs_exposure.png", img)))
        img, stats = plots.quality_vs_risk(store)
        if img:
            body.append(Section("Quality vs privacy risk", _correlation_text(stats), None,
                                ("codebleu_vs_auc.png", img)))
    tt = trojan_table(store)
    if tt is not None:
        body.append(Section("Trojan study", "ASR: share of triggered inputs whose output contains the payload "
                            "keyword; false triggers (FTR): the same on clean inputs; 95% Wilson intervals and n. "
                            "ΔASR: against the DAP1 = DAP2 = full-precision cell (Newcombe 95% interval, unadjusted). "
                            "PS: mean payload signal.", slim(tt, "the trojan table", ("model", "DAP1", "seed")),
                            details=trojan_full_table(store)))
        img = plots.trojan_rates(store)
        if img:
            body.append(Section("ASR and false triggers per DAP1 × DAP2", "", None, ("trojan_rates.png", img)))
        img = plots.payload_violins(store)
        if img:
            body.append(Section("Payload signal", "", None, ("payload_signal.png", img)))
    from quantrisk.qattack.report import qattack_sections

    body += qattack_sections(store, Section)
    st = generic_table(store, "synthetic", "Synthetic runner cells", ("index", "seed"))
    if st is not None:
        body.append(Section("Synthetic cells", "Runner self-test cells (deterministic values).", st))
    mt = memory_table(store)
    if mt is not None:
        body.append(Section("Weight memory", "", mt,
                            ("weight_memory.png", plots.weight_memory(store) or b"") if mt.rows else None))
    counts = store.counts()
    body.append(Section("Run summary", "Cells by status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                        + ".", cells_table(store)))
    ft = failures_table(store)
    if ft is not None:
        body.append(Section("Failed cells", "Rerun `quantrisk run` on the same --out to retry them.", ft))

    first: list[Section] = []
    if heads or found:
        first.append(Section("Bottom line", "", lines=_bottom_lines(store, heads, found), css="bottom"))
    first.append(Section("Setup", "", setup_table(store, constants)))
    if found:
        tests = Table("Tests used", ["claim", "test"], [[f.get("claim"), f.get("test")] for f in found])
        tests.wrap = True
        first.append(Section("Findings", standard_text(auc_margin()), findings_table(found), details=tests))
    if heads:
        first.append(Section("Largest change per study", "Per study and subject: the baseline and the largest change "
                             "against it with its 95% CI (unadjusted; see the Findings for the adjusted tests).",
                             lines=[h.line() for h in heads]))
    secs = first + body
    et = environment_table(store)
    if et is not None:
        secs.append(Section("Environment", "", et))
    return secs


def build_report(store: str | Path, out_dir: str | Path) -> Report:
    """Write report.html and report.md (+ PNGs) for the run whose store is `store` (a run dir or the .sqlite)."""
    out = Path(out_dir)
    with Store(store_path(store), create=False) as st:  # read-only; refuses a file that is not a results store
        rows = RunRows.from_store(st)
        found = run_findings(st, rows)
        sections = collect_sections(st, found, rows)
        heads = study_headlines(st, rows.paired())
        runs = st.runs()
    with made_dir(out):
        atomic_write_text(out / "findings.json", json.dumps(found, indent=2, allow_nan=False) + "\n")
        head = [finding_line(f) for f in found] + [h.line() for h in heads]  # what the commands print
        return _write_report(out, sections, runs, head)


def _all_text(sections: list[Section]) -> str:
    parts: list[str] = []
    for s in sections:
        parts += [s.title, s.text, *s.lines]
        for t in (s.table, s.details, *s.tables):
            if t is not None:
                parts += [*t.columns, *t.notes, *(str(v) for r in t.rows for v in r)]
    return "\n".join(parts)


def _write_report(out: Path, sections: list[Section], runs: list[dict[str, Any]], head: list[str]) -> Report:
    name = runs[-1]["spec_name"] if runs else "run"
    terms = used_terms(_all_text(sections))
    glossary = Section("Glossary", "Every abbreviation, name and test used on this page.",
                       Table("Glossary", ["term", "meaning"], glossary_rows(terms), wrap=True)) if terms else None
    if glossary is not None:  # before the full environment dump, after everything that uses the terms
        sections = [*sections[:-1], glossary, sections[-1]] if sections[-1].title == "Environment" else \
            [*sections, glossary]
    md = [f"# quantrisk report: {name}", "", "Contents: " + " · ".join(s.title for s in sections), ""]
    md = [md[0], "", *render_md.paragraph(md[2]), ""]
    seen: set[str] = set()
    toc = "".join(f'<a href="#{render_html.slug(s.title)}">{html.escape(s.title)}</a>' for s in sections)
    body = [f"<h1>quantrisk report: {html.escape(name)}</h1>", f'<nav class="toc">{toc}</nav>']
    images = []
    for s in sections:
        md += [f"## {s.title}", ""]
        box = [f'<h2 id="{render_html.slug(s.title)}">{html.escape(s.title)}</h2>']
        if s.text:
            md += [*render_md.paragraph(s.text), ""]
            box.append(f"<p>{render_html.text(s.text, seen)}</p>")
        if s.lines:
            md += [*render_md.bullets(s.lines), ""]
            box.append('<ul class="lines">' + "".join(f"<li>{render_html.text(x, seen)}</li>" for x in s.lines)
                       + "</ul>")
        if s is glossary:
            box.append(glossary_html(terms))
            md += [*render_md.bullets([f"**{t}**: {d}" for t, d in glossary_rows(terms)]), ""]
        else:
            for t in (s.table, *s.tables):
                if t is not None:
                    md += [*render_md.table(t), ""]
                    box.append(render_html.table(t, seen))
        if s.details is not None:
            md += [f"### {s.details.title}", "", *render_md.table(s.details), ""]
            box.append(f"<details><summary>{html.escape(s.details.title)} ({len(s.details.columns)} columns)"
                       f"</summary>{render_html.table(s.details, seen)}</details>")
        if s.image is not None and s.image[1]:
            fname, png = s.image
            path = out / fname
            path.write_bytes(png)
            images.append(path)
            md += [f"![{s.title}]({fname})", ""]
            box.append(f'<img alt="{html.escape(s.title)}" src="data:image/png;base64,'
                       f'{base64.b64encode(png).decode()}">')
        cls = f' class="{s.css}"' if s.css else ""
        body.append(f"<section{cls}>{''.join(box)}</section>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width, initial-scale=1'><title>quantrisk report: {html.escape(name)}</title>"
            f"<style>{render_html.CSS}</style></head><body>{''.join(body)}</body></html>")
    atomic_write_text(out / "report.html", page)
    atomic_write_text(out / "report.md", "\n".join(md))
    return Report(out / "report.html", out / "report.md", images, [s.title for s in sections], head)
