"""`build_report(store, out_dir)`: report.html (one self-contained file, PNGs embedded as base64) and
report.md (PNGs written beside it), from the results store alone.

Sections (each only when the store holds its data): headline (findings, then per study the baseline, the largest
change against it with its CI, one sentence), privacy table, ΔAUC vs bits, TPR at low FPR vs bits, ROC curves,
CodeBLEU vs AUC with the correlation, trojan table (compact; the full one folded in <details>), ASR /
false-trigger bars, payload-signal violins, quantization-conditioned backdoor (qattack: ASR fp vs
quantized, defences, scan verdicts), weight memory, run summary, failed cells, environment.

Every table sits in a horizontally scrolling container and its cells never wrap (CI cells stay on one line).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantrisk.findings import RunRows, findings
from quantrisk.report import plots
from quantrisk.report.headline import finding_line, study_headlines
from quantrisk.report.tables import (
    Table,
    cells_table,
    environment_table,
    failures_table,
    fmt,
    generic_table,
    memory_table,
    privacy_table,
    trojan_full_table,
    trojan_table,
)
from quantrisk.results import atomic_write_text, made_dir
from quantrisk.store import Store, store_path


@dataclass
class Section:
    """One section: text, bullet lines, a table, a table folded in <details>, an image (file name, PNG bytes)."""

    title: str
    text: str = ""
    table: Table | None = None
    image: tuple[str, bytes] | None = None
    lines: list[str] = field(default_factory=list)
    details: Table | None = None


@dataclass
class Report:
    html: Path
    markdown: Path
    images: list[Path] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)  # the first section's lines (what the commands print)


def _correlation_text(stats: dict[str, Any]) -> str:
    if not stats:
        return ""
    parts = []
    for name in ("pearson", "spearman"):
        s = stats.get(name, {})
        parts.append(f"{name.title()} r = {s['r']:.3f} (p = {s['p']:.3g}, {s.get('method', '')})" if "r" in s
                     else f"{name.title()}: {s.get('note', 'n/a')}")
    return f"Correlation of CodeBLEU with the AUC of the strongest attack ({stats['attack']}) over {stats['n']} " \
           f"(model, precision) points: " + "; ".join(parts) + ". Positive r: better quality goes with more leakage."


def run_findings(store: Store, rows: RunRows | None = None) -> list[dict[str, Any]]:
    """The claims with verdicts for this run (dicts with `headline.FINDING_KEYS`), from `quantrisk.findings` over the
    store's rows."""
    return [f.to_dict() for f in findings(rows or RunRows.from_store(store))]


def paired_table(rows: RunRows) -> Table | None:
    """Each precision vs the full-precision baseline on the same samples: ΔAUC [paired CI], DeLong p (raw, Holm),
    ΔTPR@1%FPR [paired CI]."""
    got: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}
    for m in rows.paired():
        lab = m["labels"]
        key = (lab.get("model", ""), lab.get("seed", ""), lab.get("precision", ""), lab.get("attack", ""), lab.get("baseline", ""))
        got.setdefault(key, {})[m["name"]] = m
    if not got:
        return None

    def ci(m: dict[str, Any] | None) -> str | None:
        return None if m is None else f"{m['value']:+.3f}\u00a0[{m['ci_low']:+.3f},\u00a0{m['ci_high']:+.3f}]"

    out = Table("Paired comparisons against the full-precision baseline (same samples)",
                ["model", "seed", "precision", "attack", "baseline", "ΔAUC [95% CI, unadjusted]", "DeLong p", "p (Holm)",
                 "ΔTPR@1%FPR [95% CI]"])
    for key, m in sorted(got.items()):
        out.rows.append([*key, ci(m.get("delta_auc")), m.get("delong_p", {}).get("value"),
                         m.get("delong_p_holm", {}).get("value"), ci(m.get("delta_tpr@1%fpr"))])
    return out


def headline_section(store: Store, found: list[dict[str, Any]], rows: RunRows | None = None) -> Section | None:
    heads = study_headlines(store, rows.paired() if rows is not None else None)
    if not heads and not found:
        return None
    text = ("Per study: the baseline and the largest change against it (95% CI); below, the claims of the two studies "
            "tested on this run's data (the test of each folded under the table).")
    table = findings_table(found) if found else None
    tests = Table("Tests used", ["claim", "test"], [[f.get("claim"), f.get("test")] for f in found]) if found else None
    if table is not None:
        table.wrap = True
    if tests is not None:
        tests.wrap = True
    return Section("Headline", text, table=table, lines=[h.line() for h in heads], details=tests)


def findings_table(found: list[dict[str, Any]]) -> Table:
    """One row per claim: verdict, statement, and the evidence (why, effect, CI, p) in words."""
    from quantrisk.report.headline import finding_evidence

    return Table("Findings", ["claim", "verdict", "statement", "evidence"],
                 [[f.get("claim"), f.get("verdict"), f.get("statement"), finding_evidence(f)] for f in found])


def collect_sections(store: Store, found: list[dict[str, Any]] | None = None, rows: RunRows | None = None) -> list[Section]:
    """Every section the store has data for, in report order (headline first)."""
    rows = rows or RunRows.from_store(store)
    secs: list[Section] = []
    head = headline_section(store, found or [], rows)
    if head is not None:
        secs.append(head)
    gt = generic_table(store, "pretrain", "Pretrained zoo models (mean NLL in nats/token)", ("model", "role"))
    if gt is not None:
        secs.append(Section("Pretraining", "Member vs non-member NLL: the gap is what membership inference exploits.", gt))
    pt = privacy_table(store)
    if pt is not None:
        secs.append(Section("Privacy study", "AUC above 0.5 means the attack tells members from non-members; "
                            "CIs are 95% bootstrap intervals. TPR at 1% / 0.1% FPR: the best attack's.", pt))
        pc = paired_table(rows)
        if pc is not None:
            secs.append(Section("Paired comparisons", "Each precision against the full-precision baseline on the same "
                                "samples: paired bootstrap CIs; DeLong's test, Holm-adjusted over the precisions × "
                                "attacks of a model.", pc))
        img = plots.delta_auc_vs_bits(store, rows.paired())
        if img:
            secs.append(Section("ΔAUC vs bits", "Change of each attack's AUC against the full-precision baseline; "
                                "marker shape = back-end, band = 95% paired bootstrap CI of the change (same samples; "
                                "where a precision has none, its own AUC CI shifted by the baseline).", None,
                                ("delta_auc_vs_bits.png", img)))
        img = plots.tpr_vs_bits(store)
        if img:
            secs.append(Section("TPR at low FPR vs bits", "", None, ("tpr_vs_bits.png", img)))
        img = plots.roc_curves(store)
        if img:
            secs.append(Section("ROC curves", f"Strongest attack: {plots.best_attack(store)}.", None, ("roc.png", img)))
        img = plots.auc_vs_exposure(store)
        if img:
            secs.append(Section("AUC vs exposure", "Members seen k times (exposure-regime zoo models) against all "
                                "non-members; band = 95% bootstrap CI.", None, ("auc_vs_exposure.png", img)))
        img, stats = plots.quality_vs_risk(store)
        if img:
            secs.append(Section("Quality vs privacy risk", _correlation_text(stats), None, ("codebleu_vs_auc.png", img)))
    tt = trojan_table(store)
    if tt is not None:
        secs.append(Section("Trojan study", "ASR: share of triggered inputs whose output contains the payload keyword; "
                            "false triggers: the same on clean inputs; 95% Wilson intervals and n. ΔASR: against the "
                            "DAP1 = DAP2 = full-precision cell (Newcombe 95% interval). PS: mean payload signal.",
                            tt, details=trojan_full_table(store)))
        img = plots.trojan_rates(store)
        if img:
            secs.append(Section("ASR and false triggers per DAP1 × DAP2", "", None, ("trojan_rates.png", img)))
        img = plots.payload_violins(store)
        if img:
            secs.append(Section("Payload signal", "", None, ("payload_signal.png", img)))
    from quantrisk.qattack.report import qattack_sections

    secs += qattack_sections(store, Section)
    st = generic_table(store, "synthetic", "Synthetic runner cells", ("index", "seed"))
    if st is not None:
        secs.append(Section("Synthetic cells", "Runner self-test cells (deterministic values).", st))
    mt = memory_table(store)
    if mt is not None:
        secs.append(Section("Weight memory", "", mt, ("weight_memory.png", plots.weight_memory(store) or b"") if mt.rows else None))
    counts = store.counts()
    secs.append(Section("Run summary", "Cells by status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".",
                        cells_table(store)))
    ft = failures_table(store)
    if ft is not None:
        secs.append(Section("Failed cells", "Rerun `quantrisk run` on the same --out to retry them.", ft))
    et = environment_table(store)
    if et is not None:
        secs.append(Section("Environment", "", et))
    return secs


def _md_table(t: Table) -> str:
    def esc(v: Any) -> str:
        return fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in t.rows]
    return "\n".join(lines + [f"\n_Note: {n}_" for n in t.notes])


def _html_table(t: Table) -> str:
    """The table inside a horizontally scrolling container, its notes below."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    def td(col: str, v: Any) -> str:
        cls = f' class="verdict {str(v).replace(" ", "-")}"' if col == "verdict" else ""
        return f"<td{cls}>{html.escape(fmt(v))}</td>"

    body = "".join("<tr>" + "".join(td(c, v) for c, v in zip(t.columns, row, strict=False)) + "</tr>" for row in t.rows)
    notes = "".join(f'<p class="note">Note: {html.escape(n)}</p>' for n in t.notes)
    cls = ' class="wrap"' if t.wrap else ""
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{notes}'


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0 1em}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;white-space:nowrap}
th{background:#f2f2f2}img{max-width:100%}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
.note{font-size:12px;color:#555;margin:.2em 0}ul.headline li{margin:.35em 0}
details{margin:.5em 0 1.5em}summary{cursor:pointer;color:#0645ad}
table.wrap td{white-space:normal;min-width:6em;max-width:48em;vertical-align:top}
td.verdict{font-weight:600}table.wrap td.verdict{white-space:nowrap}td.holds{color:#0a6b2e}td.does-not-hold{color:#a11}td.inconclusive{color:#8a6d00}"""


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


def _write_report(out: Path, sections: list[Section], runs: list[dict[str, Any]], head: list[str]) -> Report:
    name = runs[-1]["spec_name"] if runs else "run"
    md = [f"# quantrisk report: {name}", ""]
    body = [f"<h1>quantrisk report: {html.escape(name)}</h1>"]
    images = []
    for s in sections:
        md += [f"## {s.title}", ""]
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            md += [s.text, ""]
            body.append(f"<p>{html.escape(s.text)}</p>")
        if s.lines:
            md += [f"- {x}" for x in s.lines] + [""]
            body.append('<ul class="headline">' + "".join(f"<li>{html.escape(x)}</li>" for x in s.lines) + "</ul>")
        if s.table is not None:
            md += [_md_table(s.table), ""]
            body.append(_html_table(s.table))
        if s.details is not None:
            md += [f"<details><summary>{s.details.title}</summary>", "", _md_table(s.details), "", "</details>", ""]
            body.append(f"<details><summary>{html.escape(s.details.title)} ({len(s.details.columns)} columns)</summary>"
                        f"{_html_table(s.details)}</details>")
        if s.image is not None and s.image[1]:
            fname, png = s.image
            path = out / fname
            path.write_bytes(png)
            images.append(path)
            md += [f"![{s.title}]({fname})", ""]
            body.append(f'<img alt="{html.escape(s.title)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">')
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>quantrisk report: {html.escape(name)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    atomic_write_text(out / "report.html", page)
    atomic_write_text(out / "report.md", "\n".join(md))
    return Report(out / "report.html", out / "report.md", images, [s.title for s in sections], head)
