"""Runner mechanics with cheap cells: skip-done, rerun of interrupted cells, failures, dask, kill -9 + resume,
determinism of a real privacy cell."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantrisk.cells import Cell, register_cell_kind
from quantrisk.config import parse_spec
from quantrisk.errors import UsageError
from quantrisk.executors import make_executor
from quantrisk.results import MetricRow, StudyResult
from quantrisk.runner import run_cells, run_spec
from quantrisk.store import Store

CALLS: list[str] = []


@register_cell_kind("test-count")
def _count(cell: Cell, ctx) -> StudyResult:
    CALLS.append(cell.id)
    if cell.params.get("fail"):
        raise RuntimeError("boom")
    parent = sum(float(Path(ctx.artifact(d, "out")).read_text()) for d in cell.deps)
    value = cell.params["x"] * 2 + parent
    out = ctx.work_dir / "out.txt"
    out.write_text(str(value))
    return StudyResult("test", [MetricRow("y", value, {"x": str(cell.params["x"])})], [{"x": cell.params["x"]}],
                       {"out": str(out)})


def _chain(fail: bool = False) -> list[Cell]:
    a = Cell("test-count", {"x": 1}, (), "a")
    b = Cell("test-count", {"x": 2, "fail": fail}, (a.id,), "b")
    c = Cell("test-count", {"x": 3}, (b.id,), "c")
    d = Cell("test-count", {"x": 4}, (a.id,), "d")
    return [c, d, b, a]


def _metrics(store_dir: Path) -> list[tuple]:
    with Store(store_dir, create=False) as st:
        return sorted((m["cell_id"], m["name"], m["value"], m["ci_low"], m["ci_high"], json.dumps(m["labels"], sort_keys=True))
                      for m in st.metrics())


def test_local_run_passes_artifacts_and_skips_done(tmp_path):
    CALLS.clear()
    s = run_cells(_chain(), tmp_path)
    assert (s.n_cells, s.n_run, s.n_skipped, s.n_failed) == (4, 4, 0, 0)
    ys = {m[5]: m[2] for m in _metrics(tmp_path)}
    assert ys == {'{"x": "1"}': 2.0, '{"x": "2"}': 6.0, '{"x": "3"}': 12.0, '{"x": "4"}': 10.0}  # 2x + parents
    CALLS.clear()
    s2 = run_cells(_chain(), tmp_path)
    assert (s2.n_run, s2.n_skipped) == (0, 4) and CALLS == []


def test_running_cell_is_rerun_and_vanished_artifact_too(tmp_path):
    run_cells(_chain(), tmp_path)
    cells = {c.label: c for c in _chain()}
    with Store(tmp_path) as st:
        st.mark_running(cells["c"].id, 99)  # as if a crash happened while c ran
    Path(tmp_path / "cells" / cells["d"].id / "out.txt").unlink()
    CALLS.clear()
    s = run_cells(_chain(), tmp_path)
    assert sorted(CALLS) == sorted([cells["c"].id, cells["d"].id]) and s.n_run == 2


def test_failure_blocks_dependents_and_rerun_retries(tmp_path):
    CALLS.clear()
    s = run_cells(_chain(fail=True), tmp_path)
    assert (s.n_run, s.n_failed, s.n_blocked) == (2, 1, 1)
    assert "RuntimeError: boom" in s.failed[0]["error"] and s.failed[0]["label"] == "b"
    with Store(tmp_path, create=False) as st:
        by = {c["label"]: (c["status"], c["error"] or "") for c in st.cells()}
    assert by["c"][0] == "failed" and by["c"][1].startswith("blocked")
    CALLS.clear()
    s2 = run_cells(_chain(fail=True), tmp_path)
    assert s2.n_skipped == 2 and len(CALLS) == 1  # only b retried; c blocked again


SYN = "name: syn\nseeds: [0, 1]\nstudies:\n  synthetic: {{n_cells: {n}, work_seconds: {w}, samples_per_cell: 3}}\n"


def test_dask_local_cluster_matches_local(tmp_path):
    spec = parse_spec(SYN.format(n=5, w=0))
    local = run_spec(spec, tmp_path / "local", progress=False)
    dask = run_spec(spec, tmp_path / "dask", executor=make_executor("dask", n_workers=2), progress=False)
    assert local.n_run == dask.n_run == 12 and dask.executor == "dask"
    assert _metrics(tmp_path / "local") == _metrics(tmp_path / "dask")
    with Store(tmp_path / "dask", create=False) as st:
        assert len(list(st.samples())) == 10 * 3


def test_unknown_executor_and_unwritable_out(tmp_path):
    with pytest.raises(UsageError, match="valid: local, dask"):
        make_executor("slurm")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot create run directory"):
        run_spec(parse_spec(SYN.format(n=1, w=0)), blocker / "run", progress=False)


KILL_SCRIPT = """
import sys
from quantrisk.config import parse_spec
from quantrisk.runner import run_spec
run_spec(parse_spec(sys.argv[1]), sys.argv[2], progress=False)
"""


def _run_proc(spec_text: str, run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, spec_text, str(run_dir)], env=env)


def _n_done(run: Path) -> int:
    """Cells marked done in the run's store (0 while it does not exist yet)."""
    try:
        with sqlite3.connect(f"file:{run / 'results.sqlite'}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM cells WHERE status='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("kill_seed", [1, 2, 3])
def test_kill_9_then_resume_recomputes_only_in_flight_cells(tmp_path, kill_seed):
    spec_text = SYN.format(n=11, w=0.12)  # 24 cells
    ref = tmp_path / "ref"
    run_spec(parse_spec(spec_text), ref, progress=False)
    run = tmp_path / "run"
    rng = random.Random(kill_seed)
    kills = 0
    for _ in range(2):
        proc = _run_proc(spec_text, run)
        # wait until this run has finished a cell (imports done, cells flowing), then kill at a random moment
        deadline, before = time.time() + 60, _n_done(run)
        while time.time() < deadline and proc.poll() is None and _n_done(run) <= before:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.8))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    with sqlite3.connect(run / "results.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        done_before = conn.execute("SELECT COUNT(*) FROM cells WHERE status='done'").fetchone()[0]
        # a done cell is complete: its metrics are all there
        assert conn.execute("SELECT COUNT(*) FROM cells c WHERE status='done' AND "
                            "(SELECT COUNT(*) FROM metrics m WHERE m.cell_id=c.id) != 2").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM metrics m JOIN cells c ON c.id=m.cell_id "
                            "WHERE c.status!='done'").fetchone()[0] == 0
    final = run_spec(parse_spec(spec_text), run, progress=False)
    assert final.n_skipped == done_before and final.n_run == 24 - done_before
    with Store(run, create=False) as st:
        attempts = sum(c["attempts"] for c in st.cells())
        assert st.integrity_check() == "ok"
    assert attempts - 24 <= kills  # at most one in-flight cell lost per kill (local executor)
    assert _metrics(run) == _metrics(ref)
    print(f"kill seed {kill_seed}: {kills} SIGKILLs, {done_before}/24 cells done before the resume, "
          f"{final.n_run} run by it, {attempts} attempts in all, integrity ok, metrics == uninterrupted run")


def test_same_privacy_spec_twice_gives_identical_metrics(tmp_path, tiny_model_dirs):
    data = tmp_path / "mi.jsonl"
    import inspect

    src = inspect.getsource(json)
    with data.open("w") as fh:
        for i in range(12):
            fh.write(json.dumps({"text": src[i * 300:(i + 1) * 300], "label": i % 2}) + "\n")
    spec = parse_spec(f"""
name: det
models: [{{path: {tiny_model_dirs['pythia']}, name: p}}]
precisions: [fp32, rtn-w4g64]
studies:
  privacy: {{n: 6, attacks: [loss, zlib], completion_n: 2, max_new_tokens: 8, data: {data}, n_resamples: 200}}
""")
    a = run_spec(spec, tmp_path / "a", progress=False)
    b = run_spec(spec, tmp_path / "b", progress=False)
    assert a.n_run == b.n_run == 2 + 1 + 1 and not a.failed  # two precision cells, the blind baselines, the summary

    def results(d: Path) -> list[tuple]:  # timings (load_seconds, tokens per second) legitimately differ
        return [m for m in _metrics(d) if "second" not in m[1] and "per_s" not in m[1]]

    ma, mb = results(tmp_path / "a"), results(tmp_path / "b")
    assert ma == mb
    names = {m[1] for m in ma}
    assert {"auc", "codebleu", "weight_mb", "best_attack_auc"} <= names


def test_trojan_cells_end_to_end(tmp_path, tiny_model_dirs):
    spec = parse_spec(f"""
name: troj
models: [{{path: {tiny_model_dirs['llama']}, name: l}}]
studies:
  trojan: {{data: builtin, n_rows: 40, dap1: [fp32], dap2: [fp32, rtn-w2g64], steps: 2, batch_size: 4,
           n_test: 3, max_new_tokens: 4, lora_r: 4, lora_alpha: 4}}
""")
    s = run_spec(spec, tmp_path, progress=False)
    assert (s.n_cells, s.n_run) == (3, 3) and not s.failed, s.failed
    with Store(tmp_path, create=False) as st:
        asr = {m["labels"]["dap2"]: m["value"] for m in st.metrics(kind="trojan", name="asr")}
        adapter = st.artifacts(next(c["id"] for c in st.cells(kind="finetune")))["adapter"]
        samples = [r for _, r in st.samples(kind="trojan")]
    assert set(asr) == {"fp32", "rtn-w2g64"} and all(0.0 <= v <= 1.0 for v in asr.values())
    assert Path(adapter, "adapter_config.json").is_file()
    assert len(samples) == 2 * 2 * 3 and {r["model"] for r in samples} == {"l"}


def test_dask_workers_keep_glibc_malloc_defaults():
    """dask's nanny sets MALLOC_TRIM_THRESHOLD_, which made torch in a worker 1.3x slower per step; we drop it."""
    import dask

    from quantrisk.executors import worker_environ

    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")
    env = worker_environ()
    assert "MALLOC_TRIM_THRESHOLD_" not in env
    assert str(env["OMP_NUM_THREADS"]) == "1"


def test_stage_times_sum_the_cells_per_kind(tmp_path):
    from quantrisk.commands.experiments import stage_times

    run_spec(parse_spec(SYN.format(n=2, w=0.05)), tmp_path / "r", progress=False)
    with Store(tmp_path / "r", create=False) as st:
        cells = st.cells()
    seconds = sum(c["seconds"] for c in cells)
    (line,) = stage_times(tmp_path / "r" / "results.sqlite")
    kind, n, _, secs, _, share = line.split()
    assert (kind, int(n), share) == ("synthetic", len(cells), "(100.0%)") and len(cells) > 1
    assert float(secs) == pytest.approx(seconds, abs=0.06)


@register_cell_kind("test-long-failure")
def _long_failure(cell: Cell, ctx) -> StudyResult:
    raise ValueError("asked for 1000 + 1000 samples " + "and more words " * 12 + "but there are 320 members")


def test_a_failed_cells_line_shows_its_whole_error(tmp_path, capsys):
    # a cut at 120 characters hid the numbers ("... but there are"): the whole first line is shown, wrapped
    s = run_cells([Cell("test-long-failure", {"x": 1}, (), "long")], tmp_path, progress=True)
    assert s.n_failed == 1
    shown = " ".join(capsys.readouterr().out.split())
    assert "but there are 320 members" in shown and "FAILED: ValueError: asked for 1000" in shown
