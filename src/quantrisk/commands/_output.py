"""Small helpers shared by the commands: rich tables, JSON, the output-directory check."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console() if sys.stdout.isatty() else Console(width=100)  # tables are laid out for 100 columns


def say(*lines: Any) -> None:
    """Print each of `lines` on a line of its own with every control character (newline included) escaped
    (`sanitize.terminal`): a label, path or spec name can neither forge a line (`verdict: clean`) nor send the
    terminal a command."""
    from quantrisk.sanitize import terminal

    for line in lines:
        print(terminal(line))


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout (no rich markup)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_name(v: Any) -> bool:
    """A name (precision, kind, field): text that is not a number and not a number over a second line."""
    return isinstance(v, str) and bool(v) and not _number(v.split("\n", 1)[0])


def _composed(v: Any) -> bool:
    """A value quantrisk composed on two lines: a number over its CI or its attack (`0.50\n[0.24,0.76]`)."""
    return isinstance(v, str) and "\n" in v and _number(v.split("\n", 1)[0])


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a rich table; floats shown with 4 significant decimals.

    The leading columns that hold names (precisions, kinds, fields) never fold, so a name stays whole; the other
    columns (at least the last) fold to fit the width.
    """
    from rich import box
    from rich.text import Text

    from quantrisk.sanitize import terminal, terminal_lines

    # Text, not markup: a value like "[/]" or "[link=...]" is shown as it is; control characters escaped
    table = Table(title=Text(terminal(title)), show_lines=False, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0),
                  show_edge=False)
    labels = 0
    while labels < len(columns) - 1 and rows and all(labels < len(r) and _is_name(r[labels]) for r in rows):
        labels += 1
    for i, c in enumerate(columns):
        table.add_column(Text(terminal(c)), overflow="fold", no_wrap=i < labels)
    for r in rows:
        # every cell inert; only a value quantrisk composed on two lines (a number over its CI or its attack) keeps
        # its line break, inside the cell (a label's break is escaped: it cannot print a line of its own)
        table.add_row(*[Text((terminal_lines if _composed(v) else terminal)(
            f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v)))) for v in r])
    console.print(table)


def text_width() -> int:
    """Columns to fill: the terminal's, at most 100 (100 when not a terminal)."""
    import shutil

    return min(100, shutil.get_terminal_size((100, 24)).columns) if sys.stdout.isatty() else 100


def print_wrapped(text: str, indent: str = "") -> None:
    """Print `text` wrapped at `text_width()`, continuation lines indented by `indent` plus two spaces."""
    import textwrap

    from quantrisk.sanitize import terminal

    print(textwrap.fill(terminal(text), width=text_width(), initial_indent=indent, subsequent_indent=indent + "  ",
                        break_long_words=False, break_on_hyphens=False))


def skipped_line(skipped: dict[str, int]) -> str:
    """`skipped: REASON; REASON (×N)`: a count only where the same reason was met more than once (a bare "(1)" read
    as a quantity of the reason, e.g. "fewer than 3 precisions (1)")."""
    return "skipped: " + "; ".join(k if v == 1 else f"{k} (×{v})" for k, v in sorted(skipped.items()))


def check_out_dir(out: Path, option: str = "--out", *, markers: tuple[str, ...] = (), kind: str = "output") -> None:
    """`UsageError` before any work when `out` cannot become quantrisk's output directory (`safefs.check_out`):
    a file, a link, not writable, or a non-empty directory that holds none of `markers` (quantrisk's own `kind`
    output). Creates nothing, so a failed command leaves nothing behind."""
    from quantrisk.safefs import check_out

    check_out(out, option, markers=markers, kind=kind)
