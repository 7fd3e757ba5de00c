"""Worst-case SQL probes for trojan/sqlexec.py (SECURITY.md, "SQL bounds"): each case runs `execution_match` with a
1 s limit in a fresh process; prints wall seconds, the child's peak RSS and the outcome.

Run: `PYTHONPATH=src python3 benchmarks/sql_worst_cases.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CASES = {
    "ctx-recursive-cte": ("CREATE TABLE t AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c", "SELECT 1", "SELECT 1"),
    "zeroblob-1e9": ("CREATE TABLE t (a INT)", "SELECT 1", "SELECT length(zeroblob(1000000000))"),
    "randomblob-5e8": ("CREATE TABLE t (a INT)", "SELECT 1", "SELECT length(randomblob(500000000))"),
    "printf-width": ("CREATE TABLE t (a INT)", "SELECT 1", "SELECT length(printf('%.*c', 1000000000, 'x'))"),
    "replace-blowup": ("CREATE TABLE t (a INT)", "SELECT 1", "SELECT length(replace(replace(replace(printf('%.*c', 900000, 'x'),'x','xxxxxxxxxx'),'x','xxxxxxxxxx'),'x','xxxxxxxxxx'))"),
    "hex-zeroblob": ("CREATE TABLE t (a INT)", "SELECT 1", "SELECT length(hex(zeroblob(400000000)))"),
    "group-concat-cte": ("CREATE TABLE t (a INT)", "SELECT 1", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 30000000) SELECT length(group_concat(x)) FROM c"),
    "printf-c-empty": ("CREATE TABLE t (a INT)", "SELECT 1", "SELECT length(printf('%.*c', 2000000000, ''))"),
    "cte-big-rows-queue": ("CREATE TABLE t (a INT)", "SELECT 1", "WITH RECURSIVE c(x, s) AS (SELECT 1, printf('%.*c', 99000, 'a') UNION ALL SELECT x+1, s FROM c) SELECT count(*), max(length(s)) FROM c"),
    "cte-big-rows-sorted": ("CREATE TABLE t (a INT)", "SELECT 1", "WITH RECURSIVE c(x, s) AS (SELECT 1, printf('%.*c', 99000, 'a') UNION ALL SELECT x+1, s || '' FROM c LIMIT 1000000) SELECT x, s FROM c ORDER BY s, x DESC"),
    "big-result-rows": ("CREATE TABLE t (a INT)", "SELECT 1", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 9999) SELECT randomblob(99000) FROM c"),
    "gold-recursive": ("CREATE TABLE t (a INT)", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c", "SELECT 1"),
}


def child(name: str) -> None:
    """Run one case here and print its outcome as JSON."""
    from quantrisk.trojan.sqlexec import execution_match

    ctx, gold, pred = CASES[name]
    t = time.monotonic()
    r = execution_match(ctx, gold, pred, timeout_s=1.0)
    print(json.dumps({"case": name, "s": round(time.monotonic() - t, 2), "result": str(r)[:150]}))


def main(kill_after_s: float = 60.0) -> None:
    """Every case in its own process (killed after `kill_after_s`); one line each."""
    for name in CASES:
        t = time.monotonic()
        proc = subprocess.Popen([sys.executable, __file__, name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        while True:
            pid, _, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                out = (proc.stdout.read().strip().splitlines() or ["(no output)"])[-1]
                break
            if time.monotonic() - t > kill_after_s:
                proc.kill()
                _, _, usage = os.wait4(proc.pid, 0)
                out = f"TIMEOUT (killed at {kill_after_s:.0f} s)"
                break
            time.sleep(0.05)
        print(f"{name:20s} wall {time.monotonic() - t:5.1f} s  peak RSS {usage.ru_maxrss / 1024:6.0f} MiB  {out}",
              flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        child(sys.argv[1])
    else:
        main()
