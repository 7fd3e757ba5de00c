"""Cells: the unit of work of a run, and the registry of what each kind of cell does.

A `Cell` is (kind, params, deps) with a stable id: the first 16 hex digits of the sha256 of the canonical
JSON of {kind, params, deps}. Same inputs -> same id, on any machine, so a rerun finds finished cells.
`CELL_KINDS[kind](cell, ctx) -> StudyResult` does the work; `register_cell_kind` adds a kind (tests
register cheap fake kinds to exercise the runner). Built-in kinds: pretrain and synthetic; each study registers its
own kinds from below in its package's `cell` module (`quantrisk.privacy.cell`, `quantrisk.trojan.cell`,
`quantrisk.qattack.cell`), which `quantrisk.studies` imports: this module imports no study. A kind function must
be importable by name on dask workers (module-level function).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantrisk.errors import UsageError
from quantrisk.registry import Registry
from quantrisk.results import MetricRow, StudyResult
from quantrisk.safefs import refuse_link, write_atomic


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces: the text the cell id hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class Cell:
    """One unit of work. `params` are plain JSON values; `deps` are ids of cells that must finish first."""

    kind: str
    params: dict[str, Any]
    deps: tuple[str, ...] = ()
    label: str = ""
    id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "deps", tuple(sorted(set(self.deps))))
        if not self.id:
            object.__setattr__(self, "id", cell_id(self.kind, self.params, self.deps))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "params": self.params, "deps": list(self.deps), "label": self.label}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        return cls(d["kind"], d["params"], tuple(d.get("deps", ())), d.get("label", ""), d.get("id", ""))


def cell_id(kind: str, params: dict[str, Any], deps: tuple[str, ...] = ()) -> str:
    """sha256 (16 hex digits) of the canonical JSON of the cell's inputs and its dependencies' ids."""
    text = canonical_json({"kind": kind, "params": params, "deps": sorted(deps)})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class CellContext:
    """What a running cell may use besides its params.

    Attributes:
        run_dir: the run directory. work_dir: this cell's own folder (for artifacts it writes).
        device: resolved device (cpu, cuda, cuda:N). cache_dir: zoo model cache (None: default).
        inputs: dependency cell id -> that cell's artifacts (name -> path).
        dep_metrics, dep_samples: dependency cell id -> that cell's metric rows / per-sample rows; filled only for
            kinds registered with `reads_deps=True` (summary cells).
        progress: show inner progress bars.
    """

    run_dir: Path
    work_dir: Path
    device: str = "cpu"
    cache_dir: str | None = None
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    progress: bool = False
    dep_metrics: dict[str, list[MetricRow]] = field(default_factory=dict)
    dep_samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def artifact(self, dep_id: str, name: str) -> str:
        try:
            return self.inputs[dep_id][name]
        except KeyError:
            raise UsageError(f"cell input {dep_id}/{name} is missing (was the dependency cell run?)") from None


CellFn = Callable[[Cell, CellContext], StudyResult]
CELL_KINDS: Registry[CellFn] = Registry("cell kind")
READS_DEPS: set[str] = set()  # kinds whose context carries their dependencies' metric and sample rows


def register_cell_kind(name: str, *, reads_deps: bool = False) -> Callable[[CellFn], CellFn]:
    """Decorator: `@register_cell_kind("mykind") def run(cell, ctx) -> StudyResult`. A name already taken by another
    function raises `ValueError` (see `quantrisk.registry`)."""

    def wrap(fn: CellFn) -> CellFn:
        CELL_KINDS.add(name, fn)
        if reads_deps:
            READS_DEPS.add(name)
        return fn

    return wrap


def run_cell(cell: Cell, ctx: CellContext, fn: CellFn | None = None) -> StudyResult:
    """Run one cell (in this process): seeds python's RNG from the cell id, times it, makes `work_dir`."""
    fn = fn or CELL_KINDS.get(cell.kind)
    if fn is None:
        raise UsageError(CELL_KINDS.unknown_message(cell.kind))
    refuse_link(ctx.work_dir, "cell directory")  # a planted link would put the cell's files outside the run
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    random.seed(int(cell.id, 16))
    start = time.perf_counter()
    result = fn(cell, ctx)
    if not result.seconds:
        result.seconds = time.perf_counter() - start
    return result


# ------------------------------------------------------------------ model sources


def model_source(cell: Cell, ctx: CellContext) -> str:
    """The model a cell works on: its pretrain dependency's directory, a local path or a hub id."""
    src = cell.params["model"]
    if "zoo" in src:
        return ctx.artifact(cell.params["model_cell"], "model_dir")
    return str(src.get("path") or src["hub"])


# ------------------------------------------------------------------ pretrain


# params of a pretrain cell that name it; every other param is a pretraining-setting override (the spec model's
# `pretrain_params`, checked by `default_settings`: an unknown one is a UsageError)
_PRETRAIN_CELL_KEYS = frozenset({"arch", "size", "seed", "role", "label", "device", "regime", "target_cell"})


@register_cell_kind("pretrain")
def pretrain_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """Pretrain (or find cached) a zoo model; role `reference` trains the target's reference model."""
    from quantrisk.environment import environment
    from quantrisk.models.pretrain import ensure_pretrained, ensure_reference

    p = cell.params
    if p["role"] == "target":
        recipe = {k: v for k, v in p.items() if k not in _PRETRAIN_CELL_KEYS}  # the spec's recipe overrides
        path = ensure_pretrained(p["arch"], p["size"], seed=p["seed"], cache_dir=ctx.cache_dir, device=ctx.device,
                                 progress=ctx.progress, regime=p.get("regime") or "memorise",  # no regime param: memorise
                                 **recipe)
    else:
        ref = ensure_reference(ctx.artifact(p["target_cell"], "model_dir"), device=ctx.device, progress=ctx.progress,
                               cache_dir=ctx.cache_dir)
        if ref is None:
            raise UsageError(f"{cell.label}: the target model was not pretrained by quantrisk; no reference can be built")
        path = ref
    meta = json.loads((Path(path) / "pretrain.json").read_text(encoding="utf-8"))
    labels = {"model": p["label"], "role": p["role"]}
    metrics = [MetricRow(k, float(meta[k]), labels) for k in ("member_nll", "nonmember_nll", "nll_gap", "final_loss",
                                                               "tokens_per_second", "n_params") if k in meta]
    env = environment(ctx.device)
    env["pretrain"] = {"settings": meta.get("settings"), "corpus": meta.get("corpus"), "seconds": meta.get("seconds")}
    return StudyResult("pretrain", metrics, [], {"model_dir": str(path)}, env, {}, 0.0)


# ------------------------------------------------------------------ synthetic


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from `parts` (sha256)."""
    h = hashlib.sha256(canonical_json([str(x) for x in parts]).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


@register_cell_kind("synthetic")
def synthetic_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """A cheap deterministic cell for runner tests and executor benchmarks: sleeps `work_seconds`, writes one
    artifact file, and returns metrics/samples that are a pure function of its params and its parent's artifact."""
    p = cell.params
    parent = ""
    if p.get("parent_cell"):
        parent = Path(ctx.artifact(p["parent_cell"], "token")).read_text(encoding="utf-8")
    if p.get("work_seconds"):
        time.sleep(float(p["work_seconds"]))
    token = ctx.work_dir / "token.txt"
    write_atomic(token, f"{cell.id}:{parent}")  # a planted link is refused, never written through
    labels = {"index": str(p["index"]), "seed": str(p["seed"])}
    value = _unit(p["index"], p["seed"], parent)
    samples = [{"kind": "synthetic", "index": p["index"], "i": i, "score": _unit(p["index"], p["seed"], i)}
               for i in range(int(p.get("samples_per_cell", 0)))]
    metrics = [MetricRow("value", value, labels, value - 0.1, value + 0.1), MetricRow("n_samples", float(len(samples)), labels)]
    return StudyResult("synthetic", metrics, samples, {"token": str(token)}, {"seed": p["seed"]}, {}, 0.0)

