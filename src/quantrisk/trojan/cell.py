"""The trojan study's cell kinds, registered from below in `cells.CELL_KINDS` (`quantrisk.studies` imports this
module where the application is assembled; `cells` does not know the study).

`sql-pretrain`: a zoo base pretrained on code + the clean SQL training rows. `finetune`: a LoRA fine-tune (poisoned
or clean) of one base at one DAP1 precision. `trojan`: that adapter evaluated with the base at one DAP2 precision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantrisk.cells import Cell, CellContext, model_source, register_cell_kind
from quantrisk.results import MetricRow, StudyResult

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


@register_cell_kind("sql-pretrain")
def sql_pretrain_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """Pretrain (or find cached) a zoo base for the trojan study: code corpus + the clean SQL training rows."""
    from quantrisk.data.sql import format_example
    from quantrisk.environment import environment
    from quantrisk.models.pretrain import ensure_pretrained
    from quantrisk.trojan.options import BASE_PRETRAINING
    from quantrisk.trojan.splits import common_train_rows

    p = cell.params
    train = common_train_rows(p["data"], p["n_rows"], p.get("split_seeds", [0]))
    path = ensure_pretrained(p["arch"], p["size"], seed=p["seed"], cache_dir=ctx.cache_dir, device=ctx.device,
                             extra_texts=[format_example(r) for r in train], progress=ctx.progress,
                             regime="memorise",  # code + SQL rows: the memorise recipe
                             **{setting: p.get(key) for key, setting in BASE_PRETRAINING.items()})
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
    adapter, report = study_finetune(model_source(cell, ctx), p["dap1"], list(train), ctx.work_dir / "adapter",
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
    base = model_source(cell, ctx)
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
