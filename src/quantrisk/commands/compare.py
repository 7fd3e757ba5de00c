"""`quantrisk compare RUN_A RUN_B`: what changed between two runs (settings, code, metrics, verdicts)."""

from __future__ import annotations

from pathlib import Path

import typer


def compare_cmd(
    run_a: Path = typer.Argument(..., help="First run directory (or its results.sqlite)."),
    run_b: Path = typer.Argument(..., help="Second run directory (or its results.sqlite)."),
    as_json: bool = typer.Option(False, "--json", help="Print every difference as JSON."),
) -> None:
    """Compare two runs: spec settings and environment that differ, claims whose verdict changed, and every
    metric both stores hold whose value changed (largest changes of the main metrics first)."""
    from quantrisk.commands._output import print_json, say, text_width
    from quantrisk.report.compare import compare_lines, compare_stores

    result = compare_stores(run_a, run_b)
    if as_json:
        print_json(result)
        return
    say(*compare_lines(result, text_width()))  # labels and paths with their control characters escaped


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("compare")(compare_cmd)
