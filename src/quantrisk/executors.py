"""Executors run cells and hand each result back to the driver, which alone writes the store.

`LocalExecutor` runs cells one after another in this process. `DaskExecutor` runs them on a
`dask.distributed` cluster:

* one machine: `LocalCluster(n_workers, threads_per_worker=1, processes=True)`; torch in each worker uses
  cores // n_workers threads;
* one GPU per worker on a multi-GPU host (`executor.gpus_per_worker: 1`): worker i is started with
  `CUDA_VISIBLE_DEVICES=i` (a `SpecCluster` of `Nanny` workers), so `device: cuda` in a cell is that GPU;
* an existing cluster: `scheduler: tcp://host:8786` (start it with `dask scheduler` and one
  `dask worker tcp://host:8786 --nthreads 1` per GPU with `CUDA_VISIBLE_DEVICES` set; on SLURM,
  `dask_jobqueue.SLURMCluster(...).scale(jobs=N)` gives such workers, then pass its `scheduler_address`).
  Workers must have quantrisk installed and see the same paths (cache dir, data files, run dir).

Both respect dependencies: a cell is submitted only when every cell it depends on is done; a cell whose
dependency failed is reported `blocked` and not run.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from quantrisk.cells import CELL_KINDS, Cell, CellContext, run_cell
from quantrisk.errors import QuantriskError, UsageError
from quantrisk.results import StudyResult


@dataclass
class Callbacks:
    """What an executor tells the driver. Exceptions raised by these (e.g. a store write error) abort the run."""

    make_ctx: Callable[[Cell], CellContext]
    on_start: Callable[[Cell], None]
    on_done: Callable[[Cell, StudyResult], None]
    on_fail: Callable[[Cell, str], None]
    on_blocked: Callable[[Cell, str], None]


class Executor(Protocol):
    name: str

    def run(self, cells: list[Cell], done: set[str], cb: Callbacks) -> None:
        """Run `cells` (dependencies first); `done` holds ids of cells finished before this run."""


def describe_failure(exc: BaseException) -> str:
    """One line for a failed cell: a QuantriskError's message, else the exception type, message and location."""
    if isinstance(exc, QuantriskError):
        return f"{type(exc).__name__}: {exc}"
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _blocked_by(cell: Cell, failed: set[str]) -> str | None:
    bad = [d for d in cell.deps if d in failed]
    return bad[0] if bad else None


class LocalExecutor:
    """Run cells in this process, in order. `fail_fast`: after recording a failed cell, re-raise its exception (the
    single-study commands stop at the first failure with its own message and exit code, as a library call would)."""

    name = "local"

    def __init__(self, fail_fast: bool = False) -> None:
        self.fail_fast = fail_fast

    def run(self, cells: list[Cell], done: set[str], cb: Callbacks) -> None:
        failed: set[str] = set()
        for cell in cells:
            dep = _blocked_by(cell, failed)
            if dep is not None:
                failed.add(cell.id)
                cb.on_blocked(cell, dep)
                continue
            ctx = cb.make_ctx(cell)
            cb.on_start(cell)
            try:
                result = run_cell(cell, ctx)
            except Exception as exc:  # noqa: BLE001 - a failing cell is recorded, the run goes on
                failed.add(cell.id)
                cb.on_fail(cell, describe_failure(exc))
                if self.fail_fast:
                    raise
                continue
            cb.on_done(cell, result)


def remote_run(cell: Cell, ctx: CellContext, fn: Callable[[Cell, CellContext], StudyResult] | None,
               torch_threads: int | None) -> dict[str, Any]:
    """What a dask worker runs: the cell, returned as a plain dict (StudyResult.to_dict()). The worker's output
    (prints, warnings, logs) goes to RUN/log.txt, each repeated warning once plus a count after the cell."""
    from quantrisk.quiet import repeat_summary, worker_output

    worker_output(ctx.run_dir)
    from quantrisk.allocator import configure_allocator

    configure_allocator()
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    try:
        return run_cell(cell, ctx, fn).to_dict()
    finally:
        for line in repeat_summary(reset=True):
            print(f"[{cell.label}] {line}", file=sys.stderr, flush=True)


def worker_environ() -> dict[str, Any]:
    """The environment dask's nanny gives a worker process before it starts: dask's defaults (one OpenMP /
    MKL / OpenBLAS thread) without MALLOC_TRIM_THRESHOLD_. Setting that variable switches off glibc's dynamic
    mmap threshold, so every large torch temporary is mmap'ed and unmapped again: pretraining in a worker
    then ran 1.3x slower per step and the demo spent 6.6 min in the kernel (BENCHMARKS.md, demo rows)."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


class DaskExecutor:
    """Run cells on a dask.distributed cluster (see module doc)."""

    name = "dask"

    def __init__(self, n_workers: int = 2, scheduler: str | None = None, gpus_per_worker: int = 0) -> None:
        if n_workers < 1:
            raise UsageError(f"--workers must be at least 1, got {n_workers}")
        self.n_workers = n_workers
        self.scheduler = scheduler
        self.gpus_per_worker = gpus_per_worker

    def _client(self, log: Path | None = None) -> tuple[Any, Any]:
        import dask

        env = worker_environ()
        if log is not None:  # the workers' own logs (start-up, warnings) go to RUN/log.txt, not the terminal
            from quantrisk.quiet import dask_worker_logging
            from quantrisk.safefs import refuse_link

            refuse_link(log, "run log")  # the workers' FileHandler would append through a planted link
            log.parent.mkdir(parents=True, exist_ok=True)
            env["DASK_LOGGING"] = repr(dask_worker_logging(log))
        with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
            return self._start_client()

    def _start_client(self) -> tuple[Any, Any]:
        from dask.distributed import Client, LocalCluster

        if self.scheduler:
            try:
                return Client(self.scheduler, timeout="20s"), None
            except OSError as exc:
                raise UsageError(f"cannot reach the dask scheduler {self.scheduler}: {exc}") from None
        if self.gpus_per_worker:
            from dask.distributed import Nanny, Scheduler, SpecCluster

            workers = {f"gpu{i}": {"cls": Nanny, "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": str(i)}}}
                       for i in range(self.n_workers)}
            cluster = SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": None}},
                                  silence_logs=40)
        else:
            cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=40)
        return Client(cluster), cluster

    def run(self, cells: list[Cell], done: set[str], cb: Callbacks) -> None:
        from dask.distributed import as_completed

        client, cluster = self._client(Path(cb.make_ctx(cells[0]).run_dir) / "log.txt" if cells else None)
        threads = None if self.scheduler else max(1, (os.cpu_count() or 1) // self.n_workers)
        try:
            finished = set(done)
            failed: set[str] = set()
            pending = list(cells)
            running: dict[str, Cell] = {}
            queue = as_completed()

            def submit_ready() -> None:
                nonlocal pending
                keep = []
                for cell in pending:
                    dep = _blocked_by(cell, failed)
                    if dep is not None:
                        failed.add(cell.id)
                        cb.on_blocked(cell, dep)
                    elif all(d in finished for d in cell.deps):
                        ctx = cb.make_ctx(cell)
                        cb.on_start(cell)
                        fn = CELL_KINDS.get(cell.kind)
                        fut = client.submit(remote_run, cell, ctx, fn, threads, key=f"cell-{cell.id}", pure=False)
                        running[fut.key] = cell
                        queue.add(fut)
                    else:
                        keep.append(cell)
                pending = keep

            submit_ready()
            while running:
                fut = next(queue)
                cell = running.pop(fut.key)
                if fut.status == "error":
                    failed.add(cell.id)
                    cb.on_fail(cell, describe_failure(fut.exception()))
                else:
                    cb.on_done(cell, StudyResult.from_dict(fut.result()))
                    finished.add(cell.id)
                fut.release()
                submit_ready()
            for cell in pending:  # unreachable dependencies (should not happen after toposort)
                cb.on_blocked(cell, "unfinished dependency")
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def make_executor(kind: str = "local", *, n_workers: int = 2, scheduler: str | None = None,
                  gpus_per_worker: int = 0) -> Executor:
    """`local` or `dask` (see the classes)."""
    if kind == "local":
        return LocalExecutor()
    if kind == "dask":
        return DaskExecutor(n_workers, scheduler, gpus_per_worker)
    raise UsageError(f"unknown executor {kind!r}; valid: local, dask")
