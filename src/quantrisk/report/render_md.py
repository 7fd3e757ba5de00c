"""report.md: every line at most `WIDTH` (100) columns outside code blocks, so the file reads in a terminal.
Paragraphs and bullets are wrapped; a table wider than the page is split into column groups that repeat the row's
key columns; a table of prose (or one whose single columns are too wide) becomes a list of records. No raw HTML."""

from __future__ import annotations

import textwrap

from quantrisk.report.tables import Table

WIDTH = 100
UNLABELLED: frozenset[str] = frozenset({"statement", "meaning"})  # record fields printed without their name


def _inline(text: str) -> str:
    from quantrisk.sanitize import md_line

    return md_line(text)  # a value inside cannot open HTML, a link or a new line


def paragraph(text: str, width: int = WIDTH, *, escaped: bool = False) -> list[str]:
    """`text` wrapped at `width` (words are never broken); HTML, links and line structure of the values inside
    escaped (`sanitize.md_line`, unless `escaped`: already done), and no wrapped line can start a block."""
    from quantrisk.sanitize import md_block_start

    text = text if escaped else _inline(text)
    lines = textwrap.wrap(" ".join(text.split()), width=width, break_long_words=False, break_on_hyphens=False)
    return [md_block_start(x) for x in lines] or [""]


def bullets(items: list[str], width: int = WIDTH, bullet: str = "- ", *, escaped: bool = False) -> list[str]:
    """One wrapped bullet per item, continuation lines indented under the text; escaped as `paragraph`."""
    from quantrisk.sanitize import md_block_start

    out = []
    for item in items:
        text = item if escaped else _inline(item)
        lines = textwrap.wrap(" ".join(text.split()), width=width, initial_indent=bullet,
                              subsequent_indent=" " * len(bullet), break_long_words=False, break_on_hyphens=False)
        out += [x[:len(bullet)] + md_block_start(x[len(bullet):]) for x in lines]
    return out


def heading(level: int, text: str) -> str:
    """An ATX heading whose text is one escaped line: a label in it cannot add a line, HTML, a link, or a
    closing `#` sequence that would be dropped."""
    import re

    from quantrisk.sanitize import md_block_start

    body = md_block_start(_esc(text))
    return "#" * level + " " + re.sub(r"(^|\s)(#+)\s*$", r"\1\\\2", body)


def _esc(text: str) -> str:
    from quantrisk.sanitize import md_text

    return md_text(text)  # HTML, table and line structure escaped (SECURITY.md, "Outputs that act")


def _pipe(columns: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in rows), 3) for i, c in enumerate(columns)]
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)]


def _records(t: Table, width: int) -> list[str]:
    out = []
    for row in t.rows:
        cells = [_esc(t.cell(c, v)) for c, v in zip(t.columns, row, strict=True)]
        if len(t.columns) == 2:
            head = f"**{cells[0]}**: {cells[1]}" if cells[0] else cells[1]
            out += bullets([head], width, "- " if cells[0] else "  ", escaped=True)
            continue
        key = " · ".join(c for c in cells[:t.keys])
        rest = "; ".join(v.rstrip(".") if c in UNLABELLED else f"{c}: {v}"
                         for c, v in zip(t.columns[t.keys:], cells[t.keys:], strict=True) if v)
        out += bullets([f"**{key}**: {rest}"], width, escaped=True)
    return out


def table(t: Table, width: int = WIDTH) -> list[str]:
    """The table as Markdown lines no wider than `width`: one pipe table, several (column groups, each repeating
    the first `t.keys` columns), or a list of records when a table holds prose."""
    cols = [_esc(c) for c in t.columns]
    rows = [[_esc(t.cell(c, v)) for c, v in zip(t.columns, r, strict=True)] for r in t.rows]
    out: list[str] = []
    if not rows:
        out = ["(no rows)"]
    elif t.wrap:
        out = _records(t, width)
    else:
        whole = _pipe(cols, rows)
        if max(len(x) for x in whole) <= width:
            out = whole
        else:
            k = min(t.keys, len(cols) - 1)
            groups: list[list[int]] = []
            for i in range(k, len(cols)):
                trial = [*(groups[-1] if groups else []), i]
                idx = list(range(k)) + trial
                fits = max(len(x) for x in _pipe([cols[j] for j in idx], [[r[j] for j in idx] for r in rows])) <= width
                if groups and fits:
                    groups[-1] = trial
                else:
                    groups.append([i])
            parts = []
            for g in groups:
                idx = list(range(k)) + g
                part = _pipe([cols[j] for j in idx], [[r[j] for j in idx] for r in rows])
                if max(len(x) for x in part) > width:
                    parts = []
                    break
                parts.append(part)
            if not parts:
                out = _records(t, width)
            else:
                for n, part in enumerate(parts):
                    if len(parts) > 1:
                        out += [f"_Part {n + 1} of {len(parts)}:_", ""]
                    out += [*part, ""]
                out = out[:-1]
    for note in t.notes:
        out += ["", *paragraph(f"_Note: {note}_", width)]
    return out


def too_wide(text: str, width: int = WIDTH) -> list[tuple[int, int]]:
    """(line number, length) of every line over `width` outside ``` code blocks."""
    bad, code = [], False
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            code = not code
            continue
        if not code and len(line) > width:
            bad.append((i, len(line)))
    return bad
