"""Thread defaults for shared machines: known answers of the decision, overrides, and what the CLI sets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from quantrisk.errors import UsageError
from quantrisk.threads import configure_threads, free_cores, thread_count


def test_free_cores_known_answers():
    assert free_cores(2, 0) == 2          # alone: every core
    assert free_cores(2, 1) == 1          # one other busy process: the other core
    assert free_cores(2, 11) == 1         # oversubscribed: never below one
    assert free_cores(16, 3.4) == 13
    assert free_cores(4, -1) == 4         # never above the cores


def test_overrides_win_in_order():
    assert thread_count({}, 2, 5) == 1
    assert thread_count({"OMP_NUM_THREADS": "2"}, 2, 5) is None          # the user's OpenMP setting is kept
    assert thread_count({"QUANTRISK_THREADS": "3", "OMP_NUM_THREADS": "1"}, 2, 0) == 3
    assert thread_count({"QUANTRISK_THREADS": "auto"}, 8, 2) == 6
    with pytest.raises(UsageError, match="QUANTRISK_THREADS"):
        thread_count({"QUANTRISK_THREADS": "many"}, 2, 0)


def test_configure_sets_passive_wait_unless_given():
    env = {"QUANTRISK_THREADS": "1"}
    assert configure_threads(env) == 1
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == "1"
    env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}
    assert configure_threads(env) is None and env == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}


def test_cli_process_gets_the_defaults_before_torch_loads():
    code = ("import sys; from quantrisk.cli import main; import quantrisk.commands.precisions as p; "
            "main(['precisions', '--json']); import os, torch; "
            "print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads(), file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    env["QUANTRISK_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1] == "PASSIVE 1"
