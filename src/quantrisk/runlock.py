"""One `quantrisk run` per run directory: an exclusive, non-blocking `flock` on `RUN/run.lock`.

The lock belongs to the open file, so the kernel releases it when the process ends in any way (even `kill -9`):
a crashed run never leaves a stale lock. The file holds who took it (pid, host, start time, command line) so
that a second run fails at once naming the holder. The file itself stays in the directory (removing it would
race with a second process that opened it a moment before).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from quantrisk.errors import UsageError
from quantrisk.safefs import open_private, refuse_link

LOCK_NAME = "run.lock"


def _holder(path: Path) -> str:
    try:
        fd = open_private(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as fh:
            info = json.loads(fh.read(65536).decode("utf-8", "replace") or "{}")
    except (UsageError, OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(info.get("started", 0))))
    return (f"pid {info['pid']} on {info.get('host', '?')}, started {started}: "
            f"{' '.join(str(a) for a in info.get('argv', []))[:200]}")


@contextmanager
def run_lock(run_dir: Path) -> Iterator[Path]:
    """Hold the run directory's lock for the block; `UsageError` naming the holder if another process holds it."""
    import fcntl

    path = Path(run_dir) / LOCK_NAME
    refuse_link(path, "run lock")  # a planted link would make the run truncate whatever it points to
    try:
        fd = open_private(path, os.O_RDWR | os.O_CREAT)
    except UsageError as exc:
        raise UsageError(f"cannot use the lock {path}: {exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"run directory {run_dir} is in use by another `quantrisk run` ({_holder(path)}); wait "
                             "for it to finish or pass another --out") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "argv": ["quantrisk", *sys.argv[1:]]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock
