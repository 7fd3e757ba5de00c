"""What `run` and `demo` show while cells run: a bar over cells, a bar with an ETA for the step in flight inside the
current cell (pretraining steps, fine-tuning steps, generated prompts, scored batches; fed by `quantrisk.progress`),
and, when a cell ends, one line that stays on screen:

    [privacy pythia-tiny @ rtn-w2g64 seed 0] scoring 25/25 batches · reference model · scoring 25/25 batches (12.3 s)

Cells run on dask workers report no inner steps (their bars live in other processes); their line still prints.
Labels and step names are shown through `sanitize.terminal` (control characters escaped) and, in the bars, with
rich markup escaped: a model label cannot clear the screen, forge a line or inject markup.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def _plain(text: str) -> str:
    from quantrisk.sanitize import terminal

    return terminal(text)


def _bar_text(text: str) -> str:
    """`text` for a bar's description (rendered as rich markup): control characters and markup escaped."""
    from rich.markup import escape

    return escape(_plain(text))


class RunDisplay:
    """A `progress.Sink` with rich bars; `enabled=False` draws nothing but still takes the inner bars (and ticks)."""

    def __init__(self, enabled: bool, total: int, on_tick: Callable[[], None] | None = None,
                 stage_cells: bool = False, console: Any = None) -> None:
        """`total`: cells to run. `stage_cells`: each top-level `progress.stage` is a cell (for commands that run a
        study's steps themselves, e.g. `quantrisk privacy`: one line per precision). `console`: a rich Console
        (default: the terminal's, or 100 columns when stdout is not a terminal)."""
        self.enabled = enabled and total > 0
        self.on_tick = on_tick
        self.stage_cells = stage_cells
        self.stack: list[list[Any]] = []  # [desc, total, done, had_children]
        self.done_stages: list[str] = []
        self.label = ""
        self.bar: Any = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.table import Column

            console = console or (Console() if sys.stdout.isatty() else Console(width=100))

            class StepEta(TimeRemainingColumn):
                """`eta 0:01:40` for the step in flight; nothing for the cells row (cells differ too much in length
                for a rate over cells to predict anything)."""

                def render(self, task: Any) -> Any:
                    from rich.text import Text

                    if task.fields.get("no_eta"):
                        return Text("")
                    return Text("eta ", style="progress.remaining") + super().render(task)

            self.bar = Progress(TextColumn("{task.description}", table_column=Column(width=44, no_wrap=True,
                                                                                     overflow="ellipsis")),
                                BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(), StepEta(),
                                console=console, transient=True)
            self.cells = self.bar.add_task("cells", total=total, no_eta=True)
            self.step = self.bar.add_task("", total=None, visible=False)
            self.bar.start()

    # ------------------------------------------------------------ cells (runner callbacks)

    def cell_start(self, label: str) -> None:
        self.label, self.done_stages, self.stack = label, [], []
        self.started = time.perf_counter()
        if self.bar is not None:
            self.bar.update(self.cells, description=f"cells · {_bar_text(label)}")
            self.bar.reset(self.step, total=None, description="  starting", visible=True)

    def cell_end(self, label: str, seconds: float | None, status: str = "") -> None:
        secs = time.perf_counter() - self.started if seconds is None and self.label == label else seconds
        stages = " · ".join(self.done_stages) if self.label == label else ""
        line = _plain(f"[{label}] " + (stages or "done")) + (f" ({secs:.1f}\u00a0s)" if secs is not None else "")
        if status:
            line += f" {_plain(status)}"
        if self.bar is not None:
            import textwrap

            width = max(40, min(100, self.bar.console.width))  # wrapped between words, continuation indented
            line = textwrap.fill(line, width=width, subsequent_indent="    ", break_long_words=False,
                                 break_on_hyphens=False)
            self.bar.console.print(line, highlight=False, markup=False, soft_wrap=True)
            self.bar.advance(self.cells)
            self.bar.update(self.step, visible=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    # ------------------------------------------------------------ progress.Sink (steps inside the cell in flight)

    def stage_start(self, desc: str, total: int | None, unit: str) -> None:
        if self.stage_cells and not self.stack:
            self.cell_start(desc)
            self.stack.append([desc, None, 0, True, ""])  # the cell itself: never a step of its own line
            return
        if self.stage_cells and desc.startswith(self.label + " · "):
            desc = desc[len(self.label) + 3:]  # the line already starts with [label]
        if self.stack:
            self.stack[-1][3] = True
        self.stack.append([desc, total, 0, False, unit])
        if self.bar is not None:
            self.bar.reset(self.step, total=total, description=f"  {_bar_text(desc)}", visible=True)
        if self.on_tick is not None:
            self.on_tick()

    def stage_update(self, done: int) -> None:
        if self.stack:
            self.stack[-1][2] = done
        if self.bar is not None:
            self.bar.update(self.step, completed=done)
        if self.on_tick is not None:
            self.on_tick()

    def stage_end(self) -> None:
        if not self.stack:
            return
        desc, total, done, had_children, unit = self.stack.pop()
        if self.stage_cells and not self.stack:
            self.cell_end(desc, None)
            return
        if not had_children:
            unit_text = "" if unit in ("", "it") else " " + (unit + ("es" if unit.endswith(("ch", "sh", "s")) else "s"))
            self.done_stages.append(desc if total is None else f"{desc} {done}/{total}{unit_text}")
