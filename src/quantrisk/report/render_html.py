"""report.html: one self-contained page (PNGs embedded), a table of contents, the first use of each glossary term
linked to its entry, neutral verdict badges, highlighted rows. Tables of numbers keep each cell on one line and
scroll sideways only when they must; the main tables are built narrow enough for a 1,400 px window."""

from __future__ import annotations

import html
import re
from typing import Any

from quantrisk.report.glossary import link_first_uses
from quantrisk.report.tables import Table


def slug(title: str) -> str:
    """The section's HTML id: `ΔAUC vs bits` -> `s-delta-auc-vs-bits`."""
    return "s-" + re.sub(r"[^a-z0-9]+", "-", title.lower().replace("δ", "delta-")).strip("-")


def verdict_class(v: Any) -> str:
    return "v-" + re.sub(r"[^a-z]+", "-", str(v).lower()).strip("-")


def text(s: str, seen: set[str]) -> str:
    """Escaped text with `code` spans and the first use of each glossary term linked."""
    parts = re.split(r"(`[^`]+`)", s)
    out = []
    for p in parts:
        if p.startswith("`") and p.endswith("`") and len(p) > 1:
            out.append(f"<code>{html.escape(p[1:-1])}</code>")
        else:
            out.append(link_first_uses(html.escape(p), seen))
    return "".join(out)


def table(t: Table, seen: set[str]) -> str:
    """The table in a container that scrolls sideways only if the window is narrower than the table."""
    head = "".join(f"<th>{text(c, seen)}</th>" for c in t.columns)

    def td(col: str, v: Any) -> str:
        if col == "verdict":
            return f'<td><span class="verdict {verdict_class(v)}">{html.escape(t.cell(col, v))}</span></td>'
        return f"<td>{html.escape(t.cell(col, v))}</td>"

    body = []
    for i, row in enumerate(t.rows):
        hl = ' class="hl"' if i < len(t.highlight) and t.highlight[i] else ""
        body.append(f"<tr{hl}>" + "".join(td(c, v) for c, v in zip(t.columns, row, strict=False)) + "</tr>")
    notes = "".join(f'<p class="note">Note: {text(n, seen)}</p>' for n in t.notes)
    cls = ' class="wrap"' if t.wrap else ""
    return (f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            f"</table></div>{notes}")


CSS = """body{font-family:system-ui,sans-serif;max-width:1320px;margin:1.5em auto;padding:0 1em;color:#222;
line-height:1.4}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0 1em}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;
white-space:nowrap;vertical-align:top}th{background:#f2f2f2}img{max-width:100%;height:auto}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.note{font-size:12px;color:#555;margin:.2em 0}ul.lines li{margin:.35em 0}
details{margin:.5em 0 1.5em}summary{cursor:pointer;color:#0645ad}
table.wrap td{white-space:normal;min-width:5em;max-width:60em}
.verdict{display:inline-block;padding:0 .45em;border-radius:3px;font-weight:600;white-space:nowrap;
border:1px solid #556}
.v-holds{background:#556;color:#fff}.v-does-not-hold{background:#fff;color:#334}
.v-inconclusive{background:#eee;color:#555;border-style:dashed}
tr.hl td{background:#fff4cc}nav.toc{columns:3 16em;font-size:14px;margin:.5em 0 1em}
nav.toc a{display:block;padding:1px 0}a.term{color:inherit;text-decoration:underline dotted}
.bottom{border:2px solid #556;border-radius:6px;padding:.4em 1.2em;background:#fafafe}
dl.glossary dt{font-weight:600;margin-top:.5em}dl.glossary dd{margin-left:1.5em}
code{background:#f4f4f4;padding:0 .2em;border-radius:2px}"""
