"""Run a spec: expand it into cells, skip the cells already done in the run's store, run the rest on an
executor, and store each result (one transaction per cell) as it comes back.

Resuming is rerunning: `run_spec(spec, same_dir)` after a crash or `kill -9` reruns only the cells that
were not `done` (cells left `running` were in flight). A done cell whose artifacts vanished from disk
(e.g. a cleared model cache) is run again too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quantrisk.cells import READS_DEPS, Cell, CellContext
from quantrisk.config import Spec
from quantrisk.errors import PrecisionError, QuantriskError, UsageError
from quantrisk.executors import Callbacks, Executor, make_executor
from quantrisk.grid import expand, toposort
from quantrisk.progress import listen
from quantrisk.results import StudyResult
from quantrisk.run_display import RunDisplay
from quantrisk.runlock import run_lock
from quantrisk.safefs import remove_created, safe_child
from quantrisk.store import Store, store_path

HEARTBEAT_S = 5.0  # how often the seconds of the cell in flight are written to the store


@dataclass
class RunSummary:
    """What one `run_spec` call did. Counts are cells."""

    run_dir: str
    store: str
    run_id: int
    executor: str
    n_cells: int
    n_skipped: int          # already done before this call
    n_run: int              # finished now
    n_failed: int
    n_blocked: int          # not run: a dependency failed
    seconds: float
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_devices(spec: Spec, device: str) -> None:
    """Raise `PrecisionError` listing every precision of `spec` that cannot run on `device` here."""
    from quantrisk.precision import availability

    bad = [f"{where}: {p} ({why})" for where, p in spec.all_precisions() if not (r := availability(p, device))[0]
           for why in [r[1]]]
    if bad:
        raise PrecisionError(f"spec {spec.name}: cannot run on {device} here: " + "; ".join(bad))


def _dep_rows(store: Store, cell: Cell) -> dict[str, Any]:
    """The metric and sample rows of `cell`'s dependencies, for kinds that summarise them."""
    return {"dep_metrics": {d: store.metric_rows(d) for d in cell.deps},
            "dep_samples": {d: store.sample_rows(d) for d in cell.deps}}


def _check_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create run directory {run_dir}: {exc.strerror or exc}; pass another --out") from None
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise UsageError(f"run directory {run_dir} is not writable; pass another --out (or fix the permissions)")


def run_spec(spec: Spec, run_dir: str | Path, *, executor: Executor | None = None, progress: bool = True,
             check_device: bool = True, new_spec: bool = False) -> RunSummary:
    """Run every cell of `spec` not yet done in `run_dir`'s store (see module doc)."""
    from quantrisk.models.load import resolve_device

    cells = expand(spec)
    if not cells:
        raise UsageError(f"spec {spec.name}: the grid is empty (enable a study)")
    device = resolve_device(spec.device)
    if check_device:
        check_devices(spec, device)
    ex = executor or make_executor(spec.executor.kind, n_workers=spec.executor.n_workers,
                                   scheduler=spec.executor.scheduler, gpus_per_worker=spec.executor.gpus_per_worker)
    return run_cells(cells, run_dir, executor=ex, device=device, cache_dir=spec.cache_dir, progress=progress,
                     name=spec.name, spec_json=spec.canonical_json(), new_spec=new_spec)


@contextmanager
def _removed_on_failure(created: Path | None) -> Iterator[dict[str, bool]]:
    """Remove `created` (the topmost directory this run made, if any) if the block fails before `state["done"]`
    is set: a run that fails while setting up leaves nothing behind."""
    state = {"done": False}
    try:
        yield state
    except BaseException:
        if created is not None and not state["done"]:
            remove_created(created)
        raise


def _remove_work_dir(run_dir: Path, cell_id: str) -> None:
    """Remove `RUN/cells/<id>` of a failed cell, and `RUN/cells` when that leaves it empty."""
    try:
        cells_dir = safe_child(run_dir, "cells")
        remove_created(safe_child(cells_dir, cell_id))
    except UsageError:
        return  # a planted link: leave it (and what it points to) alone
    try:
        cells_dir.rmdir()
    except OSError:
        pass  # not empty (other cells' work) or absent


def _experiment(spec_json: str) -> dict[str, Any]:
    """What identifies an experiment: the spec without how it is executed (executor) or described."""
    try:
        data = json.loads(spec_json)
    except ValueError:
        return {"spec": spec_json}
    if not isinstance(data, dict):
        return {"spec": data}
    cal = data.get("calibration")
    if isinstance(cal, dict) and cal.get("source") == "reference":
        # stores written before `calibration.source: auto` (the default since) recorded 'reference', the same data
        # for the privacy study; trojan cells carry their resolved calibration in their ids either way
        data = {**data, "calibration": {**cal, "source": "auto"}}
    return {k: v for k, v in data.items() if k not in ("executor", "description")}


def _changes(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON values differ, with the old and new value."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += _changes(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))
        return out
    if old == new:
        return []
    return [f"{path or '(spec)'}: {json.dumps(old)[:40]} -> {json.dumps(new)[:40]}"]


def _fresh_store(run_dir: Path, name: str, spec_json: str, new_spec: bool) -> Path:
    """The store path of `run_dir`, once it is known to hold the same experiment as `spec_json` (or none).

    A store made by a different spec is refused (`UsageError` naming what changed): resuming would mix two
    experiments in one store and report. With `new_spec`, its store moves to `RUN/previous/` and a fresh one starts.
    """
    path = store_path(run_dir)
    if not path.is_file() or path.stat().st_size == 0:
        return path
    with Store(path, create=False) as old:
        runs = old.runs()
    if not runs:
        return path
    last = runs[-1]
    changed = _changes(_experiment(last["spec_json"]), _experiment(spec_json))
    if not changed:
        return path
    if not new_spec:
        more = f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""
        raise UsageError(f"run directory {run_dir} holds results of a different spec ({last['spec_name']!r}, "
                         f"{len(runs)} invocation(s)); changed: {'; '.join(changed[:3])}{more}. Resuming would mix two "
                         "experiments in one store; pass --new-spec to start a fresh experiment there (the old results "
                         f"move to {run_dir / 'previous'}/), or pass another --out")
    safe_child(run_dir, "previous")  # a `previous` link would move the store outside the run directory
    archive = safe_child(run_dir, "previous", f"{time.strftime('%Y%m%d-%H%M%S')}-{last['spec_sha256'][:8]}")
    archive.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if os.path.lexists(src):
            dst = archive / f"{path.name}{suffix}"
            if os.path.lexists(dst):
                raise UsageError(f"{dst} already exists; refused to replace it (run again in a second)")
            os.rename(src, dst)
    return path


def run_cells(cells: list[Cell], run_dir: str | Path, *, executor: Executor | None = None, device: str = "cpu",
              cache_dir: str | None = None, progress: bool = False, name: str = "cells", spec_json: str = "{}",
              new_spec: bool = False) -> RunSummary:
    """Run `cells` (any registered kinds, dependencies first) into `run_dir`'s store, skipping done ones.

    Holds `RUN/run.lock` for the whole run (a second run on the same directory fails at once, naming the holder);
    refuses a store made by a different spec unless `new_spec` (see `_fresh_store`); a failure while setting up
    removes the directory if this call created it."""
    import hashlib

    from quantrisk.environment import environment

    start = time.perf_counter()
    cells = toposort(cells)
    run_dir = Path(run_dir).expanduser()
    created = run_dir  # the topmost directory this call creates (removed again if setting up fails)
    while not created.parent.exists() and created.parent != created:
        created = created.parent
    created_now = created if not created.exists() else None
    _check_writable(run_dir)
    ex = executor or make_executor("local")
    with run_lock(run_dir), _removed_on_failure(created_now) as setup, Store(_fresh_store(
            run_dir, name, spec_json, new_spec)) as store:
        store.add_cells(cells)
        statuses = store.statuses()
        done = {c.id for c in cells if statuses.get(c.id) == "done" and store.artifacts_ok(c.id)}
        todo = [c for c in cells if c.id not in done]
        env = environment(device)
        env["spec_sha256"] = hashlib.sha256(spec_json.encode()).hexdigest()
        run_id = store.begin_run(name, spec_json, env, ex.name)
        setup["done"] = True  # from here on, results are kept whatever happens
        prior = {c["id"]: float(c["seconds"] or 0.0) for c in store.cells() if c["status"] in ("running", "failed")}
        live: dict[str, Any] = {"cell": None, "start": 0.0, "tick": 0.0}

        def tick() -> None:
            """Record the seconds of the cell in flight every few seconds, so a kill does not lose them."""
            now = time.perf_counter()
            if live["cell"] is not None and now - live["tick"] >= HEARTBEAT_S:
                live["tick"] = now
                store.record_seconds(live["cell"], prior.get(live["cell"], 0.0) + now - live["start"])

        display = RunDisplay(progress, len(todo), on_tick=tick)
        failed: list[dict[str, str]] = []
        counts = {"run": 0, "blocked": 0}

        def make_ctx(cell: Cell) -> CellContext:
            return CellContext(run_dir=run_dir, work_dir=run_dir / "cells" / cell.id, device=device,
                               cache_dir=cache_dir, inputs={d: store.artifacts(d) for d in cell.deps},
                               **(_dep_rows(store, cell) if cell.kind in READS_DEPS else {}))

        def on_start(cell: Cell) -> None:
            store.mark_running(cell.id, run_id)
            live.update(cell=cell.id, start=time.perf_counter(), tick=time.perf_counter())
            display.cell_start(cell.label)

        def on_done(cell: Cell, result: StudyResult) -> None:
            earlier = prior.get(cell.id, 0.0)
            result.seconds = float(result.seconds or 0.0) + earlier  # interrupted / failed attempts count too
            store.write_result(cell.id, result)
            counts["run"] += 1
            display.cell_end(cell.label, result.seconds,
                             f"({earlier:.1f} s of it in interrupted or failed attempts)" if earlier else "")

        def on_fail(cell: Cell, error: str) -> None:
            spent = prior.get(cell.id, 0.0) + (time.perf_counter() - live["start"] if live["cell"] == cell.id else 0.0)
            store.mark_failed(cell.id, error, seconds=spent)
            _remove_work_dir(run_dir, cell.id)  # a failed cell's half-written files (adapters, ...) are not kept
            failed.append({"id": cell.id, "label": cell.label, "error": error})
            # the error's first line in full (a cut at 120 characters hid the numbers of "asked for N but there are M")
            first = (error.strip().splitlines() or [""])[0]
            display.cell_end(cell.label, None, "FAILED: " + (first if len(first) <= 1000 else first[:1000] + " ..."))

        def on_blocked(cell: Cell, dep: str) -> None:
            store.mark_failed(cell.id, f"blocked: dependency {dep} failed")
            counts["blocked"] += 1
            display.cell_end(cell.label, 0.0, "blocked: a dependency failed")

        try:
            with listen(display):
                ex.run(todo, done, Callbacks(make_ctx, on_start, on_done, on_fail, on_blocked))
        finally:
            display.close()
        summary = RunSummary(str(run_dir), str(store.path), run_id, ex.name, len(cells), len(done), counts["run"],
                             len(failed), counts["blocked"], round(time.perf_counter() - start, 3), failed)
        store.finish_run(run_id, n_cells=len(cells), n_skipped=len(done), n_run=counts["run"],
                         n_failed=len(failed) + counts["blocked"])
    return summary


def raise_for_failures(summary: RunSummary) -> None:
    """Raise a one-line `QuantriskError` if any cell failed (the results of the others are stored)."""
    if summary.failed or summary.n_blocked:
        first = summary.failed[0] if summary.failed else {"label": "?", "error": "blocked"}
        raise QuantriskError(
            f"{summary.n_failed} cell(s) failed and {summary.n_blocked} were blocked (the other results are stored in "
            f"{summary.store}; rerun to retry); first: {first['label']}: {first['error']}")
