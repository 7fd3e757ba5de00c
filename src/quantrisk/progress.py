"""Progress of the work inside a cell: pretraining and fine-tuning steps, generated prompts, scored batches.

A long loop asks `bar(total, desc=..., unit=...)` for its bar. With no listener (a command that runs the work
itself) that is a tqdm bar, shown when `enabled`. Inside `listen(sink)` (the runner's display) it is a bar that
reports to the sink instead, whatever `enabled` says, so `run` and `demo` show a moving bar with an ETA inside a
long cell and keep one line per finished stage. `stage(name)` names a step that has no bar of its own, or
prefixes the bars inside it (e.g. "reference model").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Sink(Protocol):
    """Receives the stages of the cell in flight (the runner's display)."""

    def stage_start(self, desc: str, total: int | None, unit: str) -> None: ...

    def stage_update(self, done: int) -> None: ...

    def stage_end(self) -> None: ...


_SINK: Sink | None = None
_PREFIX: list[str] = []


@contextmanager
def listen(sink: Sink) -> Iterator[Sink]:
    """Send every bar opened inside the block to `sink` (bars of this process only: not of dask workers)."""
    global _SINK
    previous, _SINK = _SINK, sink
    try:
        yield sink
    finally:
        _SINK = previous


def listening() -> bool:
    return _SINK is not None


@contextmanager
def stage(name: str) -> Iterator[None]:
    """A named step: bars opened inside are labelled `name · desc`; with no bar inside, the step shows as `name`."""
    sink = _SINK
    _PREFIX.append(name)
    if sink is not None:
        sink.stage_start(" · ".join(_PREFIX), None, "")
    try:
        yield
    finally:
        _PREFIX.pop()
        if sink is not None:
            sink.stage_end()


class SinkBar:
    """The tqdm subset the loops use (update, set_postfix, close, iteration, context manager), sent to a sink."""

    def __init__(self, sink: Sink, iterable: Iterable[Any] | None, total: int | None, desc: str, unit: str) -> None:
        self.sink, self.iterable, self.n = sink, iterable, 0
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        sink.stage_start(" · ".join([*_PREFIX, desc]), total, unit)
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        self.sink.stage_update(self.n)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Ignored: the display shows counts and the ETA, not the running loss."""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sink.stage_end()

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> SinkBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
        enabled: bool = True) -> Any:
    """A progress bar over `iterable` or `total` steps: reported to the listening sink if there is one, else tqdm
    (hidden unless `enabled`; transient, so it leaves nothing behind)."""
    if _SINK is not None:
        return SinkBar(_SINK, iterable, total, desc, unit)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, disable=not enabled, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
