"""The CLI as a user meets it: --version, "did you mean" on a mistyped name, help text in whole sentences,
`status` with the next step, and `compare` of two runs."""

from __future__ import annotations

import json

import pytest

import test_report
from quantrisk.cli import app, main


def test_version_prints_the_installed_version_and_exits_0(capsys):
    from importlib import metadata

    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"quantrisk {metadata.version('quantrisk')}") and "\n" not in out


@pytest.mark.parametrize(("args", "want"), [
    (["scan", "no-such-model", "--precisions", "quanto-int5"], "did you mean quanto-int8"),
    (["scan", "no-such-model", "--precisions", "fp33"], "(did you mean fp32?)"),
])
def test_unknown_precision_suggests_the_closest_names(args, want, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert want in err and err.count("\n") == 1 and "Traceback" not in err


def test_unknown_attack_suggests_the_closest_name():
    from quantrisk.errors import UsageError
    from quantrisk.privacy.attacks import parse_attack

    with pytest.raises(UsageError, match="did you mean zlib"):
        parse_attack("zlb")
    with pytest.raises(UsageError) as e:
        parse_attack("telepathy")
    assert "did you mean" not in str(e.value)  # nothing close: no guess


def test_command_help_keeps_each_paragraph_on_one_line():
    # a docstring's source line breaks would break the help mid-sentence ("... calibration\n data, devices")
    for info in app.registered_commands:
        assert info.help and all("\n" not in p for p in info.help.split("\n\n")), info.name


# command modules whose commands are still closures inside `register(app)` (owned by changes in flight)
CLOSURES_PENDING = {"quantrisk.commands.experiments", "quantrisk.commands.qattack", "quantrisk.commands.scan"}


def test_commands_are_module_level_functions():
    import sys

    seen = set()
    for info in app.registered_commands:
        fn = info.callback
        seen.add(fn.__module__)
        if fn.__module__ in CLOSURES_PENDING:
            continue
        assert "<locals>" not in fn.__qualname__ and getattr(sys.modules[fn.__module__], fn.__name__) is fn, info.name
    assert {"quantrisk.commands.privacy", "quantrisk.commands.trojan", "quantrisk.commands.compare"} <= seen


def test_status_says_wall_time_and_the_next_step(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: cli\nseeds: [0]\nstudies:\n  synthetic: {n_cells: 2, samples_per_cell: 2}\n")
    run = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "wall time: " in out and f"next: `quantrisk report {run}` writes {run / 'report' / 'report.html'}" in out
    assert main(["report", str(run)]) == 0 and main(["status", str(run)]) == 0
    assert f"next: open {run / 'report' / 'report.html'}" in capsys.readouterr().out


def test_compare_two_runs_names_settings_metrics_and_verdicts(tmp_path, capsys, monkeypatch):
    from quantrisk.store import Store

    test_report._store(tmp_path / "a")
    monkeypatch.setattr(test_report, "PRECS", [("fp32", 0.30, 0.80), ("quanto-int8", 0.25, 0.72),
                                               ("rtn-w2g64", 0.10, 0.55)])
    test_report._store(tmp_path / "b", trojan=False)
    with Store(tmp_path / "b") as st:  # a second invocation of B with another setting: its spec is B's
        st.begin_run("fake", json.dumps({"seeds": [1]}), {"python": "3.x", "packages": {"torch": "2.y"}}, "local")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert max(len(x) for x in out.splitlines()) <= 100
    assert "settings: 1 differ:" in out and "seeds: — -> [1]" in out
    assert "packages.torch: 2.x -> 2.y" in out
    # quanto-int8's zlib AUC 0.70 -> 0.72; every trojan metric is only in A; T3 (clean fine-tunes) lost its data
    assert "auc pythia-tiny quanto-int8 zlib 0: 0.700 [0.650, 0.750] -> 0.720 [0.670, 0.770] (Δ +0.020)" in out
    t3 = [x.strip() for x in out.splitlines() if x.strip().startswith("T3: ")]
    assert len(t3) == 1 and " -> " in t3[0] and t3[0].split(" -> ")[0] != t3[0].split(" -> ")[1]
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "a"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["settings"] == [] and same["metrics"] == [] and same["n_metrics"]["changed"] == 0
    assert all(a == b for _, a, b in same["verdicts"])


def test_terminal_table_keeps_composed_second_lines_and_escapes_names():
    """A cell quantrisk composes on two lines (a TPR over its attack, a rate over its CI) renders as two lines, not
    as a literal `\\x0a`; a name column with a line break or an escape sequence is shown inert."""
    from rich.console import Console

    from quantrisk.commands import _output

    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    old, _output.console = _output.console, console
    try:
        _output.print_table("t", ["precision", "AUC", "TPR@1%"],
                            [["fp32", 0.7, "0.260\nreference"], ["evil\n\x1b[2Jverdict: clean", 0.6, "0.1\nloss"]])
    finally:
        _output.console = old
    text = console.export_text()
    assert "\\x0a" not in text.split("evil")[0] and "reference" in text and "0.260" in text
    lines = text.splitlines()
    assert any(line.strip().startswith("reference") for line in lines)  # the attack on the cell's second line
    assert "evil\\x0a\\x1b[2Jverdict: clean" in text and not any(line.startswith("verdict") for line in lines)
