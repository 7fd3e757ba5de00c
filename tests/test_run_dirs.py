"""Run directories: one run at a time (lock naming the holder), no resume across an edited spec without --new-spec,
read-only report/status/export that leave a foreign file byte-identical, nothing half-made after a failure."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from quantrisk.cli import main
from quantrisk.runlock import run_lock

SRC = str(Path(__file__).resolve().parents[1] / "src")
SPEC = "name: syn\nseeds: [0]\nstudies:\n  synthetic:\n    n_cells: {n}\n    samples_per_cell: 2\n    work_seconds: {w}\n"


def _spec(tmp: Path, n: int = 3, w: float = 0.0, name: str = "spec.yaml", extra: str = "") -> str:
    p = tmp / name
    p.write_text(SPEC.format(n=n, w=w) + extra)
    return str(p)


def _error(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_second_run_on_a_locked_directory_fails_fast_naming_the_holder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with run_lock(run):  # this process holds it, as a first `quantrisk run` would
        t = time.monotonic()
        code = main(["run", _spec(tmp_path), "--out", str(run), "--quiet"])
        line = _error(capsys.readouterr().err)
    assert code == 2 and time.monotonic() - t < 30
    assert f"run directory {run} is in use by another `quantrisk run` (pid {os.getpid()} on " in line
    assert "wait for it to finish or pass another --out" in line
    assert not (run / "results.sqlite").exists()  # the second run stored nothing
    assert main(["run", _spec(tmp_path), "--out", str(run), "--quiet"]) == 0  # released: runs now


def test_concurrent_runs_do_not_both_run_cells_and_kill_9_leaves_no_stale_lock(tmp_path, capsys):
    """A real second process: while the first runs (slow cells), a second run is refused; after `kill -9` of the
    first, the lock is gone (the kernel drops it) and the next run resumes without running done cells twice."""
    spec = _spec(tmp_path, n=6, w=1.0)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "quantrisk.cli", "run", spec, "--out", str(run), "--quiet"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the first run has stored one cell
            store = run / "results.sqlite"
            if store.exists():
                with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as c:
                    try:
                        if c.execute("SELECT COUNT(*) FROM cells WHERE status='done'").fetchone()[0] >= 1:
                            break
                    except sqlite3.OperationalError:
                        pass
            time.sleep(0.2)
        assert main(["run", spec, "--out", str(run), "--quiet"]) == 2
        assert f"(pid {first.pid} on " in _error(capsys.readouterr().err)
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
    with sqlite3.connect(run / "results.sqlite") as c:
        done_before = c.execute("SELECT COUNT(*) FROM cells WHERE status='done'").fetchone()[0]
    assert main(["run", spec, "--out", str(run), "--quiet"]) == 0
    assert f"{done_before} already done, {7 - done_before} run now" in capsys.readouterr().out
    with sqlite3.connect(run / "results.sqlite") as c:
        attempts = dict(c.execute("SELECT label, attempts FROM cells").fetchall())
    assert max(attempts.values()) <= 2 and sum(attempts.values()) <= 7 + 1  # only the one in flight ran twice


def test_resume_after_editing_the_spec_is_refused_unless_new_spec(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", _spec(tmp_path, n=3), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    store = run / "results.sqlite"
    before = _sha(store)
    edited = _spec(tmp_path, n=5, name="edited.yaml")
    assert main(["run", edited, "--out", str(run), "--quiet"]) == 2
    line = _error(capsys.readouterr().err)
    assert f"run directory {run} holds results of a different spec ('syn', 1 invocation(s))" in line
    assert "changed: studies.synthetic.n_cells: 3 -> 5" in line and "pass --new-spec" in line
    assert _sha(store) == before  # refused before anything was written
    # how the spec is executed is not the experiment: a different executor section resumes
    assert main(["run", _spec(tmp_path, n=3, name="exec.yaml", extra="executor: {kind: local, n_workers: 3}\n"), "--out", str(run),
                 "--quiet"]) == 0
    assert "4 already done, 0 run now" in capsys.readouterr().out
    assert main(["run", edited, "--out", str(run), "--quiet", "--new-spec"]) == 0
    assert "0 already done, 6 run now" in capsys.readouterr().out
    archived = list((run / "previous").glob("*/results.sqlite"))
    assert len(archived) == 1
    with sqlite3.connect(store) as c:  # the store holds the new experiment alone
        assert c.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 6
        specs = {json.loads(s)["studies"]["synthetic"]["n_cells"] for (s,) in c.execute("SELECT spec_json FROM runs")}
    assert specs == {5}
    with sqlite3.connect(archived[0]) as c:
        assert c.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 4


def test_report_status_export_leave_foreign_sqlite_byte_identical(tmp_path, capsys):
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as c:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE people (name TEXT)")
        c.execute("INSERT INTO people VALUES ('ada')")
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for target in (foreign, empty):
        before = _sha(target)
        listing = sorted(os.listdir(tmp_path))
        for argv in (["status", str(target)], ["report", str(target)], ["export", str(target)]):
            assert main(argv) == 2, argv
            line = _error(capsys.readouterr().err)
            assert f"{target} is not a quantrisk results store (" in line, line
        assert _sha(target) == before
        assert sorted(os.listdir(tmp_path)) == listing  # no -wal/-shm, no report/ or export/ directory


def test_empty_or_file_out_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _spec(tmp_path)
    for argv in (["run", spec, "--out", ""], ["run", spec, "--out=  "], ["report", "x", "--out", ""]):
        assert main([*argv, "--quiet"] if argv[0] == "run" else argv) == 2
        assert "--out is empty" in _error(capsys.readouterr().err)
    (tmp_path / "afile").write_text("x")
    assert main(["run", spec, "--out", "afile", "--quiet"]) == 2
    assert "--out afile is a file, not a directory" in _error(capsys.readouterr().err)
    assert sorted(os.listdir(tmp_path)) == ["afile", "spec.yaml"]


def test_setup_failure_leaves_no_run_directory(tmp_path, capsys, monkeypatch):
    """A run that fails before its first cell (here: the store cannot be opened) removes the directory it made."""
    import quantrisk.runner as runner
    from quantrisk.errors import QuantriskError

    def boom(*a, **k):
        raise QuantriskError("cannot create results store: simulated")

    monkeypatch.setattr(runner, "Store", boom)
    run = tmp_path / "deep" / "run"
    assert main(["run", _spec(tmp_path), "--out", str(run), "--quiet"]) == 1
    assert "simulated" in _error(capsys.readouterr().err)
    assert not (tmp_path / "deep").exists()


def test_failed_cell_leaves_no_half_written_work_dir(tmp_path):
    """A cell that wrote into its work directory (an adapter, say) and then failed leaves nothing there; a done
    cell's directory stays."""
    from quantrisk.cells import Cell, register_cell_kind
    from quantrisk.results import StudyResult
    from quantrisk.runner import run_cells

    @register_cell_kind("test-half-written")
    def _half(cell, ctx):  # noqa: ANN001, ANN202
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        (ctx.work_dir / "adapter_model.safetensors").write_bytes(b"half")
        if cell.params["fail"]:
            raise RuntimeError("died mid-write")
        return StudyResult("test", [], [], {"adapter": str(ctx.work_dir)}, {}, {}, 0.0)

    ok, bad = Cell("test-half-written", {"fail": False}, (), "ok"), Cell("test-half-written", {"fail": True}, (), "bad")
    s = run_cells([ok, bad], tmp_path / "run")
    assert (s.n_run, s.n_failed) == (1, 1)
    assert sorted(p.name for p in (tmp_path / "run" / "cells").iterdir()) == [ok.id]


def test_a_store_from_before_calibration_source_auto_resumes(tmp_path, capsys):
    """Specs dumped before the `auto` default recorded calibration.source 'reference': the same experiment."""
    run = tmp_path / "run"
    spec = _spec(tmp_path, n=2)
    assert main(["run", spec, "--out", str(run), "--quiet"]) == 0
    with sqlite3.connect(run / "results.sqlite") as c:
        (old,) = c.execute("SELECT spec_json FROM runs").fetchone()
        data = json.loads(old)
        assert data["calibration"]["source"] == "auto"
        data["calibration"]["source"] = "reference"
        c.execute("UPDATE runs SET spec_json = ?", (json.dumps(data),))
    capsys.readouterr()
    assert main(["run", spec, "--out", str(run), "--quiet"]) == 0
    assert "already done, 0 run now" in capsys.readouterr().out
