"""Timing and reporting shared by the benchmarks: medians of repeats, machine facts, BENCHMARKS.md rows."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# QUANTRISK_BENCHMARKS_MD redirects the rows (e.g. on a remote GPU machine, to a file that is copied back)
BENCHMARKS_MD = Path(os.environ.get("QUANTRISK_BENCHMARKS_MD") or Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
HEADER = (
    "| date | benchmark | case | metric | median | min–max | repeats | machine | versions | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|\n"
)


@dataclass
class Timing:
    """Seconds of `repeats` timed calls after `warmup` untimed ones."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


def sync(device: str) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_it(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1, device: str = "cpu",
            clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Run `fn` `warmup` times untimed, then `repeats` times timed (synchronising CUDA around each). `clock`:
    `time.process_time` gives this process's CPU seconds (all threads), for timings on a shared CPU."""
    for _ in range(warmup):
        fn()
    sync(device)
    values = []
    for _ in range(repeats):
        start = clock()
        fn()
        sync(device)
        values.append(clock() - start)
    return Timing(values)


def machine(device: str) -> str:
    """One-line description of where the benchmark ran."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} ({os.cpu_count()} CPU cores)"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def versions() -> str:
    """torch / transformers versions, short."""
    import torch
    import transformers

    return f"py{sys.version_info.major}.{sys.version_info.minor} torch {torch.__version__} tf {transformers.__version__}"


def fmt(x: float) -> str:
    return f"{x:.4g}"


def append_rows(rows: list[dict[str, Any]], path: Path = BENCHMARKS_MD) -> None:
    """Append rows (keys: benchmark, case, metric, median, low, high, repeats, machine, command) to the results table."""
    if not path.exists() or "| date | benchmark |" not in path.read_text(encoding="utf-8"):
        with path.open("a", encoding="utf-8") as fh:
            fh.write("\n## Results (appended by `python -m benchmarks ...`)\n\n" + HEADER)
    today = _dt.date.today().isoformat()
    with path.open("a", encoding="utf-8") as fh:
        for r in rows:
            rng = f"{fmt(r['low'])}–{fmt(r['high'])}" if r.get("low") is not None else ""
            case, metric = (str(r[k]).replace("|", "\\|") for k in ("case", "metric"))  # a bare | splits the cell
            fh.write(
                f"| {today} | {r['benchmark']} | {case} | {metric} | {fmt(r['median'])} | {rng} | "
                f"{r.get('repeats', '')} | {r['machine']} | {r.get('versions', '')} | `{r['command']}` |\n"
            )


def print_rows(rows: list[dict[str, Any]]) -> None:
    """Echo rows to stdout as they will appear."""
    for r in rows:
        rng = f" [{fmt(r['low'])}–{fmt(r['high'])}]" if r.get("low") is not None else ""
        print(f"{r['benchmark']:>12} | {r['case']:<40} | {r['metric']:<28} | {fmt(r['median'])}{rng}")
