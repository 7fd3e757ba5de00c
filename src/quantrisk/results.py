"""The one shape every study returns: metric rows + per-sample rows + artifacts + environment.

Studies (privacy, trojan) are library functions returning a `StudyResult`; the CLI writes it to a
directory (`write_dir`), the runner stores it in the results store. Values are plain JSON types.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class MetricRow:
    """One number. `labels` say what it is about, e.g. {"precision": "int8-dynamic", "attack": "zlib"}.

    `value` is never NaN: a metric that cannot be computed is left out and counted in `StudyResult.skipped`.
    """

    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)
    ci_low: float | None = None
    ci_high: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.value, (int, float)) or math.isnan(float(self.value)):
            raise ValueError(f"metric {self.name} {self.labels} has no numeric value ({self.value!r})")
        self.value = float(self.value)


@dataclass
class StudyResult:
    """Everything a study produced.

    Attributes:
        study: "privacy" | "trojan" | ...
        metrics: aggregate numbers.
        samples: per-sample rows (flat JSON dicts; each has at least the labels that identify it).
        artifacts: name -> path of files the study wrote (adapters, manifests).
        environment: versions, device, seeds, data hashes (see `quantrisk.environment`).
        skipped: reason -> count of samples or metrics left out (never silently).
        seconds: wall time of the study.
    """

    study: str
    metrics: list[MetricRow] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def metric(self, name: str, **labels: str) -> float:
        """The value of the one metric row named `name` whose labels include `labels`."""
        rows = [m for m in self.metrics if m.name == name and all(m.labels.get(k) == v for k, v in labels.items())]
        if len(rows) != 1:
            raise KeyError(f"{len(rows)} metric rows match {name} {labels}")
        return rows[0].value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResult:
        return cls(
            study=d["study"],
            metrics=[MetricRow(**m) for m in d.get("metrics", [])],
            samples=list(d.get("samples", [])),
            artifacts=dict(d.get("artifacts", {})),
            environment=dict(d.get("environment", {})),
            skipped=dict(d.get("skipped", {})),
            seconds=float(d.get("seconds", 0.0)),
        )

    def merge(self, other: StudyResult) -> StudyResult:
        """Concatenate another result of the same study into this one (returns self)."""
        self.metrics.extend(other.metrics)
        self.samples.extend(other.samples)
        self.artifacts.update(other.artifacts)
        for k, v in other.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + v
        self.seconds += other.seconds
        return self

    def write_dir(self, out: str | Path) -> Path:
        """Write `metrics.json` (everything but samples) and `samples.jsonl` under `out`, atomically."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        head = self.to_dict()
        samples = head.pop("samples")
        atomic_write_text(out / "metrics.json", json.dumps(head, indent=2, sort_keys=True))
        atomic_write_text(out / "samples.jsonl", "".join(json.dumps(s, sort_keys=True) + "\n" for s in samples))
        return out


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file + rename (`safefs.write_atomic`: a link at `path` is refused)."""
    from quantrisk.safefs import write_atomic

    write_atomic(path, text)


@contextmanager
def made_dir(path: Path) -> Iterator[Path]:
    """Create directory `path` (and missing parents) for the block; if the block raises, remove what this call
    created, so a failed command leaves no empty or half-written directory behind. Existing directories stay."""
    path = Path(path)
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    created = not top.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from quantrisk.errors import UsageError

        raise UsageError(f"cannot create directory {path}: {exc.strerror or exc}; pass another --out") from None
    try:
        yield path
    except BaseException:
        if created:
            from quantrisk.safefs import remove_created

            remove_created(top)
        raise
