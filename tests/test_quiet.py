"""Quiet long runs: a repeated warning is shown once and counted; dask workers write to RUN/log.txt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from quantrisk.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_repeated_warning_is_shown_once_then_counted():
    """catch_warnings() resets Python's "once" registry, so without the hook every call would print again."""
    script = (
        "import warnings\n"
        "from quantrisk.quiet import install_warning_dedup, repeat_summary\n"
        "install_warning_dedup()\n"
        "for i in range(500):\n"
        "    with warnings.catch_warnings():\n"
        "        pass\n"
        "    warnings.warn('MatMul8bitLt: inputs will be cast from torch.bfloat16 to float16 during quantization')\n"
        "    warnings.warn(f'other {i % 2}', DeprecationWarning)\n"
        "print('\\n'.join(repeat_summary()))\n")
    plain = subprocess.run([sys.executable, "-W", "default", "-c", script.replace("install_warning_dedup()\n", "")],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert plain.stderr.count("MatMul8bitLt") == 500  # the problem: every call printed
    got = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert got.stderr.count("MatMul8bitLt") == 1 and got.stderr.count("DeprecationWarning: other") == 2
    lines = got.stdout.splitlines()
    assert "warning repeated 499 more times: UserWarning: MatMul8bitLt: inputs will be cast" in lines[0]
    assert sorted(lines[1:]) == ["warning repeated 249 more times: DeprecationWarning: other 0",
                                 "warning repeated 249 more times: DeprecationWarning: other 1"]


def test_dask_worker_logs_go_to_the_run_log(tmp_path, capfd):
    """The one-GPU-per-worker cluster (nanny workers) printed every worker's INFO logs on the terminal."""
    spec = tmp_path / "s.yaml"
    spec.write_text("name: syn\nseeds: [0]\nexecutor: {kind: dask, n_workers: 1, gpus_per_worker: 1}\n"
                    "studies:\n  synthetic: {n_cells: 2, samples_per_cell: 1}\n")
    assert main(["run", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    out, err = capfd.readouterr()
    assert "distributed." not in out + err and "INFO" not in out + err
    assert err.strip() == ""
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "distributed.worker INFO" in log and "Start worker at" in log
    assert "writes to this log from here on" in log
