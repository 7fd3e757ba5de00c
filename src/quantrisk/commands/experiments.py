"""Experiments as data: `validate`, `run`, `status`, `report`, `export`, `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from quantrisk.commands._output import say


def _executor(spec: Any, executor: str | None, workers: int | None, scheduler: str | None) -> Any:
    from quantrisk.errors import UsageError
    from quantrisk.executors import make_executor
    from quantrisk.spec_yaml import SIZE_BOUNDS

    bound = int(SIZE_BOUNDS["n_workers"])  # the same bound as the spec's executor.n_workers
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be 1 or more, got {workers}")
    if workers is not None and workers > bound:
        raise UsageError(f"--workers {workers} is beyond the bound of {bound:,} (the spec's executor.n_workers has "
                         "the same); pass fewer")
    kind = executor or ("dask" if scheduler else spec.executor.kind)
    return make_executor(kind, n_workers=workers or spec.executor.n_workers,
                         scheduler=scheduler or spec.executor.scheduler, gpus_per_worker=spec.executor.gpus_per_worker)


def _run_base(run: Path) -> Path:
    """The run directory of RUN (a directory, or its results store / any file given instead)."""
    return run.parent if run.suffix == ".sqlite" or run.is_file() else run


def _print_summary(summary: Any) -> None:
    say(f"cells: {summary.n_cells} total, {summary.n_skipped} already done, {summary.n_run} run now, "
          f"{summary.n_failed} failed, {summary.n_blocked} blocked ({summary.executor} executor, {summary.seconds:.1f} s)")
    say(f"results: {summary.store}")


def stage_times(store_file: Path) -> list[str]:
    """Per-stage breakdown of a store's cells (the report's cells table): kind, cells done, seconds, share."""
    from quantrisk.report.tables import cells_table
    from quantrisk.store import Store

    with Store(store_file, create=False) as st:
        rows = cells_table(st).rows  # [kind, done, running, pending, failed, seconds]
    total = sum(r[5] for r in rows) or 1.0
    w = max((len(r[0]) for r in rows), default=0)
    return [f"  {r[0]:<{w}} {r[1]:>3} cells {r[5]:8.1f} s ({100 * r[5] / total:4.1f}%)"
            for r in sorted(rows, key=lambda r: -r[5])]


def print_stage_times(store_file: Path) -> None:
    say("time per stage (every attempt of each cell, interrupted ones included; cached pretraining counts 0):")
    for line in stage_times(store_file):
        say(line)


def headline(store_file: Path) -> list[str]:
    """The report's headline as lines (findings, then per study the baseline and the largest change with its CI):
    what `demo`, `run` and `report` print at the end."""
    from quantrisk.findings import RunRows
    from quantrisk.report.build import run_findings
    from quantrisk.report.headline import headline_lines
    from quantrisk.store import Store

    with Store(store_file, create=False) as st:
        rows = RunRows.from_store(st)
        return headline_lines(st, run_findings(st, rows), rows.paired())


def print_headline(store_file: Path | None, lines: list[str] | None = None) -> None:
    """Print the headline: `lines` (a built report's) or else computed from the store."""
    from quantrisk.commands._output import print_wrapped

    lines = headline(store_file) if lines is None else lines
    if lines:
        say("headline:")
    for line in lines:
        print_wrapped(line, indent="  ")


def status_next(run: Path, cells: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[str]:
    """The wall time so far and the next step: the report's path when every cell is done (built or to build),
    else the command that resumes the run."""
    from quantrisk.formats import seconds
    from quantrisk.report.setup import wall_seconds_of

    base = _run_base(run)
    out = []
    wall, cell_s = wall_seconds_of(runs), sum(float(c["seconds"] or 0.0) for c in cells)
    out.append(f"wall time: {seconds(wall) if wall is not None else 'not finished yet'} "
               f"({seconds(cell_s)} summed over cells)")
    todo = [c for c in cells if c["status"] != "done"]
    report = base / "report" / "report.html"
    if not todo and report.exists():
        out.append(f"next: open {report} (rebuild with `quantrisk report {base}`)")
    elif not todo:
        out.append(f"next: `quantrisk report {base}` writes {report}")
    elif any(c["status"] == "failed" for c in todo):
        out.append(f"next: rerun the same `quantrisk run SPEC --out {base}` to retry the failed cells "
                   "(done cells are kept)")
    else:
        out.append(f"next: {len(todo)} cells to go; if no run is in progress, `quantrisk run SPEC --out {base}` "
                   "resumes it")
    return out


def validate_cmd(
    spec: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    check_device: bool = typer.Option(False, "--check-device",
                                      help="Also check every precision can run on the spec's device on THIS machine "
                                           "(always done for device: cpu, and by `run`)."),
    check_inputs: bool = typer.Option(False, "--check-inputs",
                                      help="Also check the model directories and data files the spec names, on THIS "
                                           "machine (always done by `run`)."),
) -> None:
    """Validate a spec: every error with its file:line and field path; prints the grid size."""
    from collections import Counter

    from quantrisk.config import load_spec
    from quantrisk.grid import expand

    s = load_spec(spec, check_device=True if check_device else None, check_inputs=check_inputs)
    cells = expand(s)
    kinds = Counter(c.kind for c in cells)
    say(f"{spec}: valid; {len(cells)} cells (" + ", ".join(f"{k} {v}" for k, v in kinds.items()) + ")")



def run_cmd(
    spec: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    out: Path = typer.Option(None, help="Run directory (default: runs/<spec name>). Rerun on it to resume."),
    executor: str = typer.Option(None, help="local or dask (default: the spec's)."),
    workers: int = typer.Option(None, help="Dask workers of the LocalCluster (default: the spec's)."),
    scheduler: str = typer.Option(None, help="Address of an existing dask scheduler, e.g. tcp://host:8786."),
    report: bool = typer.Option(False, "--report", help="Build report.html / report.md under RUN/report after."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    new_spec: bool = typer.Option(False, "--new-spec",
                                  help="The run directory holds results of a different spec: start a fresh "
                                       "experiment there (the old store moves to RUN/previous/)."),
) -> None:
    """Run every cell of SPEC not already done in the run directory; results go to RUN/results.sqlite."""
    from quantrisk.commands._output import check_out_dir
    from quantrisk.config import load_spec
    from quantrisk.runner import raise_for_failures, run_spec
    from quantrisk.safefs import RUN_MARKERS

    s = load_spec(spec, check_device=True, check_inputs=True)
    run_dir = out or Path("runs") / s.name
    check_out_dir(run_dir, markers=RUN_MARKERS, kind="run")
    summary = run_spec(s, run_dir, executor=_executor(s, executor, workers, scheduler), progress=not quiet,
                       new_spec=new_spec)
    _print_summary(summary)
    print_stage_times(Path(summary.store))
    if report:
        from quantrisk.studies import build_report

        rep = build_report(run_dir, run_dir / "report")
        say(f"report: {rep.html}")
    print_headline(Path(summary.store), rep.headline if report else None)
    raise_for_failures(summary)



def status_cmd(
    run: Path = typer.Argument(..., help="Run directory (or its results.sqlite)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Progress of a run: cells per kind and status, cells in flight or failed, past invocations."""
    from collections import Counter

    from quantrisk.commands._output import print_json, print_table
    from quantrisk.store import Store, store_path

    with Store(store_path(run), create=False) as st:
        cells = st.cells()
        runs = st.runs()
        integrity = st.integrity_check()
    by = Counter((c["kind"], c["status"]) for c in cells)
    kinds = list(dict.fromkeys(c["kind"] for c in cells))
    statuses = ("done", "running", "pending", "failed")
    if as_json:
        print_json({"cells": {k: {s: by[(k, s)] for s in statuses} for k in kinds}, "integrity": integrity,
                    "runs": [{k: v for k, v in r.items() if k not in ("spec_json", "environment")} for r in runs],
                    "problems": [{"id": c["id"], "label": c["label"], "status": c["status"], "error": c["error"]}
                                 for c in cells if c["status"] in ("running", "failed")]})
        return
    total = {s: sum(by[(k, s)] for k in kinds) for s in statuses}
    print_table(f"{run}: {total['done']}/{len(cells)} cells done", ["kind", *statuses],
                [[k, *(by[(k, s)] for s in statuses)] for k in kinds])
    for c in cells:
        if c["status"] == "running":
            say(f"running (or interrupted): {c['label']} [{c['id']}]")
        elif c["status"] == "failed":
            say(f"failed: {c['label']} [{c['id']}]: {c['error']}")
    if runs:
        last = runs[-1]
        n_failed = total["failed"]
        if last["finished"]:
            state = f"finished with {n_failed} failed cell(s)" if n_failed else "finished"
        elif n_failed and not total["running"]:
            state = f"stopped after {n_failed} cell(s) failed (rerun to retry them)"
        else:
            state = "in progress or interrupted"
        say(f"{len(runs)} invocation(s); last: {last['executor']} executor, {state}; store integrity: {integrity}")
    for line in status_next(run, cells, runs):
        say(line)



def report_cmd(
    run: Path = typer.Argument(..., help="Run directory (or its results.sqlite)."),
    out: Path = typer.Option(None, help="Output directory (default: RUN/report)."),
    compare: Path = typer.Option(None, "--compare", help="Another run directory (or its results.sqlite): add a "
                                 "section of what changed from it to RUN (settings, metrics, verdicts)."),
) -> None:
    """Build report.html (self-contained) and report.md (+ PNGs) from the run's store alone (and, with
    --compare, the other run's)."""
    from quantrisk.commands._output import check_out_dir
    from quantrisk.safefs import REPORT_MARKERS
    from quantrisk.store import store_path
    from quantrisk.studies import build_report

    target = out or _run_base(run) / "report"
    check_out_dir(target, markers=REPORT_MARKERS, kind="report")
    if compare is not None:  # before any work: the other run must be a results store
        from quantrisk.errors import about
        from quantrisk.store import Store

        with about("--compare"), Store(store_path(compare), create=False):
            pass
    rep = build_report(run, target, compare=compare)
    say(f"report: {rep.html}", f"markdown: {rep.markdown}", f"findings: {rep.html.parent / 'findings.json'}",
        f"sections: {', '.join(rep.sections)}")
    print_headline(store_path(run), rep.headline)



def export_cmd(
    run: Path = typer.Argument(..., help="Run directory (or its results.sqlite)."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    out: Path = typer.Option(None, help="Output directory (default: RUN/export)."),
) -> None:
    """Export the cells, metrics and samples tables as CSV or Parquet files."""
    from quantrisk.commands._output import check_out_dir
    from quantrisk.report import export_run
    from quantrisk.safefs import EXPORT_MARKERS

    target = out or _run_base(run) / "export"
    check_out_dir(target, markers=EXPORT_MARKERS, kind="export")
    for p in export_run(run, target, fmt):
        say(p)



def demo_cmd(
    out: Path = typer.Option(Path("quantrisk-demo"), help="Run directory (rerun on it to resume)."),
    executor: str = typer.Option(None, help="local or dask (default: the demo spec's, dask with 2 workers)."),
    workers: int = typer.Option(None, help="Dask workers."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    new_spec: bool = typer.Option(False, "--new-spec",
                                  help="OUT holds results of another spec (e.g. an older demo): start afresh."),
) -> None:
    """The whole product in one command: pretrain tiny zoo models (cached), run the privacy and trojan studies
    at several precisions on the built-in spec, and write the report."""
    import time

    from quantrisk.commands._output import check_out_dir
    from quantrisk.config import builtin_spec_path, load_spec
    from quantrisk.runner import raise_for_failures, run_spec
    from quantrisk.safefs import RUN_MARKERS
    from quantrisk.studies import build_report

    start = time.perf_counter()
    check_out_dir(out, markers=RUN_MARKERS, kind="run")
    path = builtin_spec_path("demo")
    s = load_spec(path, check_device=True, check_inputs=True)
    from quantrisk.commands._output import print_wrapped

    print_wrapped(f"demo: spec {path}; " + " ".join((s.description or "").split()))
    summary = run_spec(s, out, executor=_executor(s, executor, workers, None), progress=not quiet,
                       new_spec=new_spec)
    rep = build_report(out, out / "report")
    print()
    _print_summary(summary)
    print_stage_times(Path(summary.store))
    say(f"report: {rep.html} (markdown: {rep.markdown})")
    print_headline(Path(summary.store), rep.headline)
    say(f"demo finished in {time.perf_counter() - start:.1f} s")
    raise_for_failures(summary)


def register(app: typer.Typer) -> None:
    """Add the experiment commands (validate, run, status, report, export, demo) to `app`."""
    app.command("validate")(validate_cmd)
    app.command("run")(run_cmd)
    app.command("status")(status_cmd)
    app.command("report")(report_cmd)
    app.command("export")(export_cmd)
    app.command("demo")(demo_cmd)
