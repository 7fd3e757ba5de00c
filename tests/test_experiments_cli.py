"""End to end through `quantrisk.cli.main`: validate, run, status, report, export (synthetic cells: cheap)."""

from __future__ import annotations

from pathlib import Path

from quantrisk.cli import main

SPEC = "name: cli\nseeds: [0]\nstudies:\n  synthetic: {n_cells: 3, samples_per_cell: 2}\n"


def _spec(tmp_path: Path, text: str = SPEC) -> str:
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return str(p)


def test_validate_ok_and_errors(tmp_path, capsys):
    assert main(["validate", _spec(tmp_path)]) == 0
    assert "valid; 4 cells (synthetic 4)" in capsys.readouterr().out
    bad = _spec(tmp_path, "name: x\nprecisions: [fp33]\nstudies:\n  synthetic: {n_cells: 0}\nextra: 1\n")
    assert main(["validate", bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: spec ") and "3 errors" in err and "Traceback" not in err
    assert "spec.yaml:2: precisions[0]: unknown precision 'fp33'" in err
    assert "spec.yaml:4: studies.synthetic.n_cells" in err and "spec.yaml:5: extra: unknown field" in err


def test_run_status_report_export(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", _spec(tmp_path), "--out", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "cells: 4 total, 0 already done, 4 run now, 0 failed" in out
    assert main(["run", _spec(tmp_path), "--out", str(run), "--quiet", "--report"]) == 0
    out = capsys.readouterr().out
    assert "4 already done, 0 run now" in out and (run / "report" / "report.html").is_file()
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "4/4 cells done" in out and "store integrity: ok" in out
    assert main(["status", str(run), "--json"]) == 0
    assert '"done": 4' in capsys.readouterr().out
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    assert "Synthetic cells" in capsys.readouterr().out
    import re

    md = (tmp_path / "rep" / "report.md").read_text()
    assert re.search(r"^\| 0 +\| 0 +\|", md, re.M)  # index 0, seed 0 row of the synthetic table (padded columns)
    assert main(["export", str(run), "--format", "parquet"]) == 0
    assert (run / "export" / "metrics.parquet").is_file()
    assert main(["export", str(run / "results.sqlite"), "--format", "csv", "--out", str(tmp_path / "csv")]) == 0
    assert (tmp_path / "csv" / "samples.csv").read_text().count("\n") == 1 + 3 * 2


def test_status_of_missing_run_and_bad_executor(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert "no results store" in capsys.readouterr().err
    assert main(["run", _spec(tmp_path), "--out", str(tmp_path / "r"), "--executor", "ray", "--quiet"]) == 2
    assert "valid: local, dask" in capsys.readouterr().err


def test_workers_below_one_is_a_usage_error_before_any_work(tmp_path, capsys):
    for argv in (["run", _spec(tmp_path), "--out", str(tmp_path / "run"), "--executor", "dask", "--workers", "0"],
                 ["demo", "--out", str(tmp_path / "demo"), "--workers", "-2"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1].startswith("error: --workers must be 1 or more") and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "demo").exists()
