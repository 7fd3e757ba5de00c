"""Cells: the unit of work of a run, and the registry of what each kind of cell does.

A `Cell` is (kind, params, deps) with a stable id: the first 16 hex digits of the sha256 of the canonical
JSON of {kind, params, deps}. Same inputs -> same id, on any machine, so a rerun finds finished cells.
`CELL_KINDS[kind](cell, ctx) -> StudyResult` does the work; `register_cell_kind` adds a kind (tests
register cheap fake kinds to exercise the runner). Built-in kinds: pretrain, privacy, finetune, trojan,
synthetic. A kind function must be importable by name on dask workers (module-level function).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
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


# ------------------------------------------------------------------ privacy


@lru_cache(maxsize=8)
def mi_set(source: str, n: int | None, seed: int, nonmembers: str | None = None) -> Any:
    """The member/non-member set of a privacy cell: `privacy.members.load_mi_set` (N + N, seeded with the cell's
    seed) of `data` (+ `nonmembers`) or else the model's own split. Cached per process."""
    from quantrisk.privacy.members import load_mi_set

    return load_mi_set(source, n, nonmembers=nonmembers, seed=seed)


@register_cell_kind("privacy")
def privacy_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """MI attacks + CodeBLEU for one model at one precision and seed."""
    from quantrisk.privacy.inputs import ReferenceModel
    from quantrisk.privacy.options import PrivacyOptions
    from quantrisk.privacy.study import privacy_at_precision, resolve_reference

    p = cell.params
    source = model_source(cell, ctx)
    opts = PrivacyOptions.from_params(p, seed=p["seed"], progress=ctx.progress)
    samples = mi_set(p["data"] or source, opts.n, opts.seed, p.get("nonmembers"))
    if p["reference"] == "none":
        reference = ReferenceModel("none")
    elif p.get("reference_cell"):
        reference = ReferenceModel(f"cell:{p['reference_cell']}", lambda: ctx.artifact(p["reference_cell"], "model_dir"))
    else:
        def resolve() -> str | None:
            found = resolve_reference(source, p.get("reference_path"), ctx.device, ctx.progress)
            return str(found) if found is not None else None

        reference = ReferenceModel(f"auto:{source}:{p.get('reference_path')}", resolve)
    from quantrisk.data.calibration import CalibrationSpec

    calibration = CalibrationSpec(**p["calibration"]) if p.get("calibration") else None
    result = privacy_at_precision(source, p["precision"], samples=samples, device=ctx.device, options=opts,
                                  reference_source=reference, model_label=p["label"], calibration=calibration)
    for m in result.metrics:
        m.labels["seed"] = str(p["seed"])
    for row in result.samples:
        row["seed"] = p["seed"]
    return result


@register_cell_kind("privacy-summary", reads_deps=True)
def privacy_summary_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """Best attack, quality-risk correlation and paired comparisons against the baseline precision, over the
    privacy cells it depends on (`privacy.summary`)."""
    from quantrisk.privacy.options import PrivacyOptions
    from quantrisk.privacy.summary import summarize

    p = cell.params
    opts = PrivacyOptions.from_params(p, seed=p.get("seed", 0))
    return summarize([m for dep in cell.deps for m in ctx.dep_metrics.get(dep, [])],
                     [r for dep in cell.deps for r in ctx.dep_samples.get(dep, [])], attacks=p.get("attacks", []),
                     n_resamples=opts.n_resamples, seed=opts.seed)


@register_cell_kind("privacy-blind")
def privacy_blind_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """Blind (model-free) baselines of one privacy set (model, seed): `blind_auc` rows (`privacy.blind`), the same
    member / non-member set the privacy cells of that seed score, tokenized with the model's tokenizer."""
    from quantrisk.data.corpus import load_split
    from quantrisk.models.load import load_tokenizer, resolve_source
    from quantrisk.privacy.blind import blind_rows, reference_training_texts
    from quantrisk.privacy.options import PrivacyOptions
    from quantrisk.scoring import tokenize

    p = cell.params
    opts = PrivacyOptions.from_params(p, seed=p["seed"])
    source = model_source(cell, ctx)
    samples = mi_set(p["data"] or source, opts.n, opts.seed, p.get("nonmembers"))
    texts, y = [s.text for s in samples.samples], [s.label for s in samples.samples]
    skipped: dict[str, int] = {}
    token_ids = reference_ids = None
    try:
        tokenizer = load_tokenizer(resolve_source(source))
        token_ids = tokenize(tokenizer, texts)
        if (Path(source) / "split.jsonl").is_file():  # a quantrisk model: what its reference model trained on
            reference_ids = tokenize(tokenizer, reference_training_texts(load_split(source)))
        else:
            skipped["blind: no reference split (reference-token baselines not computed)"] = 1
    except UsageError as exc:  # a tokenizer that will not load costs only the token baselines
        skipped[f"blind: tokenizer not loaded ({type(exc).__name__}); token baselines not computed"] = 1
    labels = {"model": p["label"], "seed": str(p["seed"])}
    metrics = blind_rows(texts, y, labels, token_ids=token_ids, reference_ids=reference_ids,
                         n_resamples=opts.n_resamples, seed=opts.seed)
    removed = dict(samples.skipped)
    meta = Path(source) / "pretrain.json"
    if meta.is_file():  # the testbed's split dropped its near-duplicates before training
        removed.update(json.loads(meta.read_text(encoding="utf-8")).get("dropped", {}))
    for reason, count in sorted(removed.items()):
        if reason.startswith("near-duplicate"):
            metrics.append(MetricRow("near_duplicates_removed", float(count), {**labels, "reason": reason}))
    env = {"mi_set_sha256": samples.sha256(), "mi_source": samples.source, "n_members": samples.n_members,
           "n_nonmembers": samples.n_nonmembers}
    return StudyResult("privacy-blind", metrics, [], {}, env, skipped, 0.0)


# ------------------------------------------------------------------ trojan


# what the parameters of a cell stored before these options existed meant (its id fixes them): LoRA on the
# attention projections, each replicate's own split
LEGACY_TROJAN: dict[str, Any] = {"target": "attention", "split_seed": None}


def trojan_options(p: dict[str, Any]) -> Any:
    """The `trojan.options.TrojanSettings` of a finetune / trojan cell's parameters `p`."""
    from quantrisk.trojan.options import TrojanSettings

    return TrojanSettings.from_params({**LEGACY_TROJAN, **p})


def sql_splits(p: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(train rows, test rows) of a finetune / trojan cell with params `p`: `trojan.splits.trojan_splits` with the
    replicate's split seed (`trojan.splits.split_seed_for`)."""
    from quantrisk.trojan.splits import split_seed_for, trojan_splits

    o = trojan_options(p)
    return trojan_splits(o.data, o.n_rows, o.n_test, o.n_train, split_seed_for(p["seed"], o.split_seed))


def _trojan_base(cell: Cell, ctx: CellContext) -> str:
    src = cell.params["model"]
    if "zoo" in src:
        return ctx.artifact(cell.params["model_cell"], "model_dir")
    return str(src.get("path") or src["hub"])


@register_cell_kind("sql-pretrain")
def sql_pretrain_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """Pretrain (or find cached) a zoo base for the trojan study: code corpus + the clean SQL training rows."""
    from quantrisk.data.sql import format_example
    from quantrisk.environment import environment
    from quantrisk.models.pretrain import ensure_pretrained
    from quantrisk.trojan.splits import common_train_rows

    p = cell.params
    train = common_train_rows(p["data"], p["n_rows"], p.get("split_seeds", [0]))
    path = ensure_pretrained(p["arch"], p["size"], seed=p["seed"], cache_dir=ctx.cache_dir, device=ctx.device,
                             extra_texts=[format_example(r) for r in train], progress=ctx.progress,
                             regime="memorise", steps=p.get("pretrain_steps"),  # code + SQL rows: the memorise recipe
                             vocab_size=p.get("pretrain_vocab_size"))
    meta = json.loads((Path(path) / "pretrain.json").read_text(encoding="utf-8"))
    labels = {"model": p["label"], "role": "sql-base"}
    metrics = [MetricRow(k, float(meta[k]), labels) for k in ("member_nll", "nonmember_nll", "final_loss") if k in meta]
    return StudyResult("pretrain", metrics, [], {"model_dir": str(path)}, environment(ctx.device), {}, 0.0)


@register_cell_kind("finetune")
def finetune_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """LoRA fine-tune (poisoned or clean) of one base at one DAP1 precision; the adapter is the artifact."""
    from quantrisk.data.poison import PoisonSpec
    from quantrisk.data.sql import rows_sha256
    from quantrisk.environment import environment
    from quantrisk.trojan.splits import split_seed_for
    from quantrisk.trojan.study import finetune_cell as study_finetune

    p = cell.params
    o = trojan_options(p)
    train, _ = sql_splits(p)
    poison = PoisonSpec(trigger=o.trigger, payload=o.payload, position=o.position, rate=o.poison_rate)
    adapter, report = study_finetune(_trojan_base(cell, ctx), p["dap1"], list(train), ctx.work_dir / "adapter",
                                     kind=p["kind"], poison=poison, seed=p["seed"], steps=o.steps,
                                     batch_size=o.batch_size, grad_accum=o.grad_accum, lr=o.lr, r=o.lora_r,
                                     alpha=o.lora_alpha, dropout=o.lora_dropout, target=o.target,
                                     max_length=o.max_length, device=ctx.device, progress=ctx.progress)
    labels = {"model": p["label"], "dap1": p["dap1"], "kind": p["kind"], "seed": str(p["seed"])}
    metrics = [MetricRow("finetune_seconds", float(report.seconds), labels),
               MetricRow("finetune_final_loss", float(report.final_loss), labels)]
    env = {**environment(ctx.device), "train_sha256": rows_sha256(train), "n_train": len(train),
           "split_seed": split_seed_for(p["seed"], o.split_seed), "poison": poison.to_dict()}
    return StudyResult("finetune", metrics, [], {"adapter": str(adapter)}, env, {}, 0.0)


@register_cell_kind("trojan")
def trojan_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """Evaluate one fine-tuned adapter with the base loaded at one DAP2 precision (triggered + clean test rows)."""
    from quantrisk.data.sql import rows_sha256
    from quantrisk.trojan.splits import split_seed_for
    from quantrisk.trojan.study import evaluate_trojan

    p = cell.params
    o = trojan_options(p)
    split_seed = split_seed_for(p["seed"], o.split_seed)
    train, test = sql_splits(p)
    adapter = ctx.artifact(p["finetune_cell"], "adapter")
    base = _trojan_base(cell, ctx)
    labels = {"model": p["label"], "dap1": p["dap1"], "kind": p["kind"], "seed": str(p["seed"])}
    calibration = None
    if p.get("calibration"):  # a calibrated dap2: clean training prompts by default, checked disjoint from `test`
        from quantrisk.data.calibration import CalibrationSpec
        from quantrisk.trojan.calibration import trojan_calibration

        calibration = trojan_calibration(CalibrationSpec(**p["calibration"]), train, test, trigger=o.trigger,
                                         base_dir=base)
    result = evaluate_trojan(base, adapter, p["dap2"], list(test), trigger=o.trigger,
                             labels=labels, device=ctx.device, batch_size=o.gen_batch_size,
                             max_new_tokens=o.max_new_tokens, exec_seed=split_seed, progress=ctx.progress,
                             calibration=calibration)
    if calibration is not None:
        result.environment["calibration"] = {**calibration.record(), "disjoint_from": f"{len(test)} test rows' "
                                             "prompts (triggered + clean): checked"}
    result.metrics.append(MetricRow("eval_seconds", result.seconds, {**labels, "dap2": p["dap2"]}))
    weight = [m for m in result.metrics if m.name == "weight_bytes"]
    for m in weight:
        result.metrics.append(MetricRow("weight_mb", m.value / 2**20, dict(m.labels)))
    for row in result.samples:
        row.update({k: v for k, v in labels.items() if k not in row})
    result.environment["test_sha256"] = rows_sha256(test)
    result.environment.update({"split_seed": split_seed, "n_test": len(test)})
    return result


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

