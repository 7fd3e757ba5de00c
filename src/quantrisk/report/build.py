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

from quantrisk.findings import RunRows, findings
from quantrisk.report import render_html, render_md
from quantrisk.report.glossary import glossary_html, glossary_rows, used_terms
from quantrisk.report.headline import finding_line, study_headlines
from quantrisk.report.sections import SECTIONS, Section, collect_sections
from quantrisk.report.tables import Table
from quantrisk.results import atomic_write_text, made_dir
from quantrisk.safefs import write_atomic
from quantrisk.sanitize import md_text
from quantrisk.store import Store, store_path


@dataclass
class Report:
    html: Path
    markdown: Path
    images: list[Path] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)  # what the commands print (findings, then per study)


def run_findings(store: Store, rows: RunRows | None = None) -> list[dict[str, Any]]:
    """The claims with verdicts for this run (dicts with `headline.FINDING_KEYS`), from `quantrisk.findings` over the
    store's rows."""
    return [f.to_dict() for f in findings(rows or RunRows.from_store(store))]


def require_study_sections() -> None:
    """`RuntimeError` when no study has registered a report section (every section comes from this package)."""
    if all(fn.__module__.startswith("quantrisk.report.") for fn in SECTIONS.values()):
        raise RuntimeError("no study has registered its report sections: import quantrisk.studies first (or use "
                           "quantrisk.studies.build_report)")


def build_report(store: str | Path, out_dir: str | Path, compare: str | Path | None = None) -> Report:
    """Write report.html and report.md (+ PNGs) for the run whose store is `store` (a run dir or the .sqlite);
    with `compare` (another run), a section of what changed from that run to this one, after the setup.

    The studies' sections are registered from below: import `quantrisk.studies` first (or call its
    `build_report`); without any study registered this raises `RuntimeError` rather than write a page without
    them."""
    require_study_sections()
    out = Path(out_dir)
    with Store(store_path(store), create=False) as st:  # read-only; refuses a file that is not a results store
        rows = RunRows.from_store(st)
        found = run_findings(st, rows)
        sections = collect_sections(st, found, rows)
        heads = study_headlines(st, rows.paired())
        runs = st.runs()
    if compare is not None:
        from quantrisk.report.compare import compare_section, compare_stores

        at = next((i + 1 for i, s in enumerate(sections) if s.title == "Setup"), 0)
        sections.insert(at, compare_section(compare_stores(compare, store), str(compare)))
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
    md = [render_md.heading(1, f"quantrisk report: {name}"), "", "Contents: " + " · ".join(s.title for s in sections), ""]
    md = [md[0], "", *render_md.paragraph(md[2]), ""]
    seen: set[str] = set()
    toc = "".join(f'<a href="#{render_html.slug(s.title)}">{html.escape(s.title)}</a>' for s in sections)
    body = [f"<h1>quantrisk report: {html.escape(name)}</h1>", f'<nav class="toc">{toc}</nav>']
    images = []
    for s in sections:
        md += [render_md.heading(2, s.title), ""]
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
            md += [render_md.heading(3, s.details.title), "", *render_md.table(s.details), ""]
            box.append(f"<details><summary>{html.escape(s.details.title)} ({len(s.details.columns)} columns)"
                       f"</summary>{render_html.table(s.details, seen)}</details>")
        if s.image is not None and s.image[1]:
            fname, png = s.image
            path = out / fname
            write_atomic(path, png)  # a planted link at the name is refused, not written through
            images.append(path)
            md += [f"![{md_text(s.title)}]({fname})", ""]
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
