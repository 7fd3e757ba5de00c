"""`build_report(store, out_dir)`: report.html (one self-contained file, PNGs embedded as base64) and
report.md (PNGs written beside it), from the results store alone.

Sections (each only when the store holds its data): run summary, privacy table, MI AUC vs bits,
ROC curves, CodeBLEU vs AUC with the correlation, trojan table, ASR / false-trigger bars, payload-signal
violins, weight memory, failed cells, environment.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantrisk.report import plots
from quantrisk.report.tables import (
    Table,
    cells_table,
    environment_table,
    failures_table,
    fmt,
    generic_table,
    memory_table,
    privacy_table,
    trojan_table,
)
from quantrisk.results import atomic_write_text
from quantrisk.store import Store, store_path


@dataclass
class Section:
    title: str
    text: str = ""
    table: Table | None = None
    image: tuple[str, bytes] | None = None  # (file name, png bytes)


@dataclass
class Report:
    html: Path
    markdown: Path
    images: list[Path] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)


def _correlation_text(stats: dict[str, Any]) -> str:
    if not stats:
        return ""
    parts = []
    for name in ("pearson", "spearman"):
        s = stats.get(name, {})
        parts.append(f"{name.title()} r = {s['r']:.3f} (p = {s['p']:.3g})" if "r" in s else f"{name.title()}: {s.get('note', 'n/a')}")
    return f"Correlation of CodeBLEU with the AUC of the strongest attack ({stats['attack']}) over {stats['n']} " \
           f"(model, precision) points: " + "; ".join(parts) + ". Positive r: better quality goes with more leakage."


def collect_sections(store: Store) -> list[Section]:
    """Every section the store has data for, in report order."""
    secs: list[Section] = []
    counts = store.counts()
    secs.append(Section("Run summary", "Cells by status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".",
                        cells_table(store)))
    gt = generic_table(store, "pretrain", "Pretrained zoo models (mean NLL in nats/token)", ("model", "role"))
    if gt is not None:
        secs.append(Section("Pretraining", "Member vs non-member NLL: the gap is what membership inference exploits.", gt))
    pt = privacy_table(store)
    if pt is not None:
        secs.append(Section("Privacy study", "AUC above 0.5 means the attack tells members from non-members; "
                            "CIs are 95% bootstrap intervals.", pt))
        img = plots.auc_vs_bits(store)
        if img:
            secs.append(Section("MI AUC vs bits", "", None, ("auc_vs_bits.png", img)))
        img = plots.roc_curves(store)
        if img:
            secs.append(Section("ROC curves", f"Strongest attack: {plots.best_attack(store)}.", None, ("roc.png", img)))
        img, stats = plots.quality_vs_risk(store)
        if img:
            secs.append(Section("Quality vs privacy risk", _correlation_text(stats), None, ("codebleu_vs_auc.png", img)))
    tt = trojan_table(store)
    if tt is not None:
        secs.append(Section("Trojan study", "ASR: share of triggered inputs whose output contains the payload keyword; "
                            "false-trigger rate: the same on clean inputs.", tt))
        img = plots.trojan_rates(store)
        if img:
            secs.append(Section("ASR and false triggers per DAP1 × DAP2", "", None, ("trojan_rates.png", img)))
        img = plots.payload_violins(store)
        if img:
            secs.append(Section("Payload signal", "", None, ("payload_signal.png", img)))
    st = generic_table(store, "synthetic", "Synthetic runner cells", ("index", "seed"))
    if st is not None:
        secs.append(Section("Synthetic cells", "Runner self-test cells (deterministic values).", st))
    mt = memory_table(store)
    if mt is not None:
        secs.append(Section("Weight memory", "", mt, ("weight_memory.png", plots.weight_memory(store) or b"") if mt.rows else None))
    ft = failures_table(store)
    if ft is not None:
        secs.append(Section("Failed cells", "Rerun `quantrisk run` on the same --out to retry them.", ft))
    et = environment_table(store)
    if et is not None:
        secs.append(Section("Environment", "", et))
    return secs


def _md_table(t: Table) -> str:
    esc = [lambda v: fmt(v).replace("|", "\\|").replace("\n", " ")][0]
    lines = ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in t.rows]
    return "\n".join(lines)


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f2f2f2}img{max-width:100%}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"""


def build_report(store: str | Path, out_dir: str | Path) -> Report:
    """Write report.html and report.md (+ PNGs) for the run whose store is `store` (a run dir or the .sqlite)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with Store(store_path(store), create=False) as st:
        sections = collect_sections(st)
        runs = st.runs()
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
        if s.table is not None:
            md += [_md_table(s.table), ""]
            body.append(_html_table(s.table))
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
    return Report(out / "report.html", out / "report.md", images, [s.title for s in sections])
