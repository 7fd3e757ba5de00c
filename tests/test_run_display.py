"""The run display: one line per finished cell naming its inner steps; inner bars feed it; interrupted attempts'
seconds survive a resume."""

from __future__ import annotations

import io

from rich.console import Console

from quantrisk import progress
from quantrisk.cells import Cell, register_cell_kind
from quantrisk.results import MetricRow, StudyResult
from quantrisk.run_display import RunDisplay
from quantrisk.runner import run_cells
from quantrisk.store import Store


@register_cell_kind("test-steps")
def _steps(cell: Cell, ctx) -> StudyResult:
    with progress.stage("reference model"):
        for _ in progress.bar(range(3), desc="scoring", unit="batch"):
            pass
    b = progress.bar(total=4, desc="generate", unit="prompt", enabled=False)
    b.update(2)
    b.update(2)
    b.close()
    with progress.stage("correlation"):
        pass
    return StudyResult("test", [MetricRow("y", 1.0, {})], [], {}, seconds=0.5)


def test_display_prints_one_line_per_cell_with_its_steps(tmp_path, monkeypatch):
    import quantrisk.run_display as rd

    buf = io.StringIO()
    console = Console(file=buf, width=100, force_terminal=False)
    monkeypatch.setattr(rd, "RunDisplay", lambda *a, **k: RunDisplay(*a, **k, console=console))
    import quantrisk.runner as runner

    monkeypatch.setattr(runner, "RunDisplay", rd.RunDisplay)
    run_cells([Cell("test-steps", {"i": 1}, (), "steps @ rtn-w2g64")], tmp_path, progress=True)
    text = buf.getvalue()
    assert max(len(x) for x in text.splitlines()) <= 100  # wrapped between words for a 100-column terminal
    assert ("[steps @ rtn-w2g64] reference model · scoring 3/3 batches · generate 4/4 prompts · correlation (0.5 s)"
            in " ".join(text.replace("\u00a0", " ").split())), text


def test_sink_nesting_records_leaf_steps_only():
    d = RunDisplay(False, 1)
    d.cell_start("c")
    with progress.listen(d):
        with progress.stage("outer"):
            with progress.stage("inner"):
                pass
            bar = progress.bar(total=2, desc="loop", unit="step")
            bar.update(1)
            bar.close()
    assert d.done_stages == ["outer · inner", "outer · loop 1/2 steps"]
    assert not progress.listening()


def test_seconds_of_an_interrupted_attempt_survive_the_resume(tmp_path):
    cell = Cell("test-steps", {"i": 2}, (), "resumed")
    with Store(tmp_path) as st:  # an earlier run: the cell was in flight for 7 s (heartbeats), then killed
        st.add_cells([cell])
        run_id = st.begin_run("x", "{}", {}, "local")
        st.mark_running(cell.id, run_id)
        st.record_seconds(cell.id, 7.0)
    run_cells([cell], tmp_path)
    with Store(tmp_path, create=False) as st:
        (c,) = st.cells()
    assert c["status"] == "done" and c["seconds"] == 7.5  # 7 s before the kill + 0.5 s of the finished attempt


def test_stage_cells_mode_prints_one_line_per_top_level_stage():
    """`quantrisk privacy` / `trojan` run their steps themselves: each top-level stage (a precision) is a line."""
    buf = io.StringIO()
    d = RunDisplay(True, 2, stage_cells=True, console=Console(file=buf, width=100, force_terminal=False))
    with progress.listen(d):
        for p in ("fp32", "rtn-w2g64"):
            with progress.stage(p):
                with progress.stage("target model"):
                    for _ in progress.bar(range(2), desc="scoring", unit="batch"):
                        pass
                with progress.stage("completions 4"):
                    pass
    d.close()
    lines = [x.replace("\u00a0", " ") for x in buf.getvalue().splitlines() if x.startswith("[")]
    assert [x.split(" (")[0] for x in lines] == ["[fp32] target model · scoring 2/2 batches · completions 4",
                                                  "[rtn-w2g64] target model · scoring 2/2 batches · completions 4"]


def test_labels_and_steps_are_shown_inert():
    """A label with escape sequences, a newline and rich markup: escaped on the cell's line and in the bars (a
    `[/]` in a bar description used to be parsed as markup)."""
    buf = io.StringIO()
    console = Console(file=buf, width=100, force_terminal=True, color_system=None)
    label = "m\x1b]0;pwned\x07\x1b[2J\nverdict: clean [/] [link=http://x]y"
    d = RunDisplay(True, 1, console=console)
    d.cell_start(label)
    d.stage_start(f"score {label}", 3, "batch")
    d.stage_update(3)
    d.stage_end()
    d.cell_end(label, 1.0, status="failed\x1b[31m")
    d.close()
    text = buf.getvalue()
    assert "\x07" not in text and "\x1b]0;" not in text and "\x1b[2J" not in text and "\x1b[31m" not in text
    assert not any(x.lstrip().startswith("verdict: clean") for x in text.splitlines())
    assert "\\x1b]0;pwned\\x07" in text and "[/] [link=http://x]y" in text
