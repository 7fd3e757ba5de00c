"""Small output helpers shared by the commands (rich tables, JSON)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console() if sys.stdout.isatty() else Console(width=200)


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout (no rich markup)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a rich table; floats shown with 4 significant decimals."""
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v)) for v in r])
    console.print(table)
