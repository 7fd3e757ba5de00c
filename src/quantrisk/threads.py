"""CPU thread defaults that keep a run usable on a shared machine (set by the CLI before torch loads).

PyTorch's OpenMP pool uses every core and its idle threads spin (busy-wait) before sleeping. When other
processes compete for the same cores, each of the thousands of small parallel regions of a tiny model's step
waits at a barrier for a thread the kernel has descheduled: a first demo on a shared 2-core machine took
29 minutes (sql-pretrain 627 s instead of 52 s). Defaults, each overridable:

* `OMP_WAIT_POLICY=PASSIVE` (unless set): idle OpenMP threads sleep instead of spinning, so they neither
  steal the other processes' cores nor their own process's other threads' cores.
* the thread count: `QUANTRISK_THREADS=N` forces N; otherwise an `OMP_NUM_THREADS` the user set is kept;
  otherwise ("auto") the cores not already busy: max(1, cores - busy), busy = the median over 5 samples in
  0.2 s of the processes running or runnable right now (`/proc/loadavg`, 4th field) other than this one, so a
  run alone gets every core and a run beside others does not oversubscribe the machine. (The 1-minute load
  average lags by a minute: right after other work ends it would still pick one thread.)
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from quantrisk.errors import UsageError


def free_cores(cores: int, busy: float) -> int:
    """Cores not already busy: max(1, min(cores, cores - round(busy)))."""
    return max(1, min(cores, cores - round(busy)))


def busy_now(samples: int = 5, interval: float = 0.05) -> float:
    """Median number of other processes running or runnable now (Linux `/proc/loadavg`), else the 1-minute load."""
    import statistics
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]) - 1)  # minus this process
        except (OSError, IndexError, ValueError):
            try:
                return os.getloadavg()[0]
            except OSError:
                return 0.0
        if i < samples - 1:
            time.sleep(interval)
    return float(statistics.median(counts))


def thread_count(env: MutableMapping[str, str], cores: int, busy: float) -> int | None:
    """The intra-op thread count to set, or None to leave the user's `OMP_NUM_THREADS` alone (see module doc)."""
    forced = env.get("QUANTRISK_THREADS", "auto").strip().lower()
    if forced not in ("", "auto"):
        if not forced.isdigit() or int(forced) < 1:
            raise UsageError(f"QUANTRISK_THREADS must be a positive integer or 'auto', got {env['QUANTRISK_THREADS']!r}")
        return int(forced)
    if env.get("OMP_NUM_THREADS"):
        return None
    return free_cores(cores, busy)


def configure_threads(env: MutableMapping[str, str] | None = None) -> int | None:
    """Apply the defaults to `env` (default: os.environ) before torch is imported; returns the thread count set."""
    env = os.environ if env is None else env
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    n = thread_count(env, cores, busy_now() if not env.get("OMP_NUM_THREADS") and "QUANTRISK_THREADS" not in env else 0.0)
    if n is not None:
        env["OMP_NUM_THREADS"] = str(n)
        env.setdefault("MKL_NUM_THREADS", str(n))
    return n
