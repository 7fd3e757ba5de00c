"""glibc malloc settings that keep large torch temporaries in the heap (set by the CLI and by each dask worker).

glibc serves an allocation above its mmap threshold (adaptive, at most 32 MiB) with a fresh `mmap` and unmaps it
again on `free`. A packed training step of the tiny zoo models allocates its (16, 512, 4096) fp32 logits (128 MiB),
their log-softmax and their gradient every step, so each step maps, zero-fills (one page fault per 4 KiB page) and
unmaps hundreds of MiB: a cold `quantrisk demo` at one thread took 24.6 million minor page faults and 46 s of system
time. With the mmap threshold and the trim threshold at 1 GiB those blocks come from the heap and are reused
(BENCHMARKS.md, "End to end"): the same numbers, far fewer page faults and kernel time.

`QUANTRISK_MALLOC=default` keeps glibc's settings; nothing is changed when the user set `MALLOC_MMAP_THRESHOLD_` or
`MALLOC_TRIM_THRESHOLD_` (glibc read those at start) or off glibc (no `mallopt`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 2**30


def configure_allocator(env: Mapping[str, str] | None = None) -> bool:
    """Raise glibc's mmap and trim thresholds to `THRESHOLD_BYTES` (see module doc); True if they were set."""
    env = os.environ if env is None else env
    if env.get("QUANTRISK_MALLOC", "").strip().lower() == "default":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in env or "MALLOC_TRIM_THRESHOLD_" in env:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES))
