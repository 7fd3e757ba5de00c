"""Quiet long runs: each distinct library warning shown once, repeats counted; dask workers write to RUN/log.txt.

A 2-GPU dask run printed bitsandbytes' `MatMul8bitLt: inputs will be cast from torch.bfloat16 to float16 during
quantization` 169,134 times, plus every worker's INFO logs. Python's own "show once" does not hold in a long run:
every `warnings.catch_warnings()` exit (transformers and torch use it on hot paths) resets the registry, so the
same warning is shown again and again. Here:
- `install_warning_dedup()` replaces `warnings.showwarning` so a (category, message) pair is shown the first time
  and only counted afterwards; `repeat_summary()` gives one line per repeated warning ("... repeated N more times");
- `worker_output(run_dir)` (called by a dask worker before each cell) sends the worker process's stdout, stderr and
  log records to `RUN/log.txt` (file descriptors 1 and 2, so C-level prints too), so the terminal shows only the
  driver's progress and errors; `dask_worker_logging(log)` is the dask logging config that puts the worker's own
  start-up logs there too.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

_seen: Counter[tuple[str, str]] = Counter()
_original_show: Any = None
_redirected_to: str | None = None


def _show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None,
          line: str | None = None) -> None:
    key = (category.__name__, str(message).strip().splitlines()[0][:300] if str(message).strip() else "")
    _seen[key] += 1
    if _seen[key] == 1 and _original_show is not None:
        _original_show(message, category, filename, lineno, file, line)


def install_warning_dedup() -> None:
    """Show each distinct warning once in this process; later ones are counted (see `repeat_summary`)."""
    global _original_show
    if _original_show is None:
        _original_show = warnings.showwarning
        warnings.showwarning = _show


def repeat_summary(reset: bool = False) -> list[str]:
    """One line per warning shown once and then repeated: `warning repeated N more times: Category: message`."""
    lines = [f"warning repeated {n - 1:,} more times: {cat}: {msg[:160]}" for (cat, msg), n in _seen.items() if n > 1]
    if reset:
        _seen.clear()
    return lines


def worker_output(run_dir: str | Path) -> Path:
    """Send this process's stdout/stderr (file descriptors 1 and 2) and log records to `run_dir/log.txt`; install
    the warning de-duplication. Idempotent per process and log file; returns the log path."""
    global _redirected_to
    log = Path(run_dir) / "log.txt"
    install_warning_dedup()
    if _redirected_to == str(log):
        return log
    log.parent.mkdir(parents=True, exist_ok=True)
    from quantrisk.safefs import open_private

    fd = open_private(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # never appends through a planted link
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    handler = logging.StreamHandler(sys.stderr)  # fd 2 is the log now
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            root.removeHandler(h)
    root.addHandler(handler)
    _redirected_to = str(log)
    print(f"--- worker pid {os.getpid()} writes to this log from here on", file=sys.stderr, flush=True)
    return log


def dask_worker_logging(log: Path) -> dict[str, Any]:
    """A `logging` dictConfig for dask worker processes: everything of `distributed` at INFO to `log`, nothing on
    the terminal (pass it as the worker's `DASK_LOGGING` environment variable)."""
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log), "formatter": "plain"}},
            "loggers": {"distributed": {"level": "INFO", "handlers": ["file"], "propagate": False}}}
