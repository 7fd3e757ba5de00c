"""The `qattack` cell kind of experiment specs: one attack (+ defence sweep + scan) per (model, seed).

Metrics (labels model, seed, and where it matters target / stage / defence / sigma / precision):
asr / ftr / js_k / em with stage = base | injected | repaired and target = fp32 or a target precision;
codes_identical (1/0) and codes_blocks_differing (gguf targets: quantization blocks whose bytes differ) per
target; repair_steps, interval_mean_width, interval_share_frozen; defence_asr,
defence_ftr, defence_js_k, defence_em per (defence, target, sigma, precision); scan_suspicious (1/0) and
scan_pileup (largest over the targets) for stage = base | repaired; success (1/0: the acceptance of
`qattack.acceptance` met; a cell whose attack did not work still succeeds as a cell, and its sample row
{attack_worked, attack_reason} says why, for the report). Artifacts: the run directory and the repaired model.
"""

from __future__ import annotations

from typing import Any

from quantrisk.cells import Cell, CellContext, register_cell_kind
from quantrisk.qattack.options import QattackSettings
from quantrisk.results import MetricRow, StudyResult


def _source(model: dict[str, Any]) -> str:
    if "zoo" in model:
        return f"zoo:{model['zoo']}-{model['size']}"
    return str(model.get("path") or model["hub"])


def metric_rows(result: dict[str, Any], labels: dict[str, str]) -> list[MetricRow]:
    """The cell's metric rows from a `run_qattack` result (plus its `scan` entry when present)."""
    rows: list[MetricRow] = []

    def add(name: str, value: Any, **extra: Any) -> None:
        if value is not None:
            rows.append(MetricRow(name, float(value), {**labels, **{k: str(v) for k, v in extra.items()}}))

    for stage, figures in (("base", {"fp32": result["base_fp"]}), ("injected", result["injected"]),
                           ("repaired", {"fp32": result["repaired_fp"]})):
        for target, f in figures.items():
            for k in ("asr", "ftr", "js_k", "em"):
                add(k, f.get(k), stage=stage, target=target)
    for target, f in result["per_target"].items():
        add("asr", f["asr_quantized"], stage="repaired", target=target)
        add("ftr", f["ftr_quantized"], stage="repaired", target=target)
        add("js_k", f["js_k"], stage="repaired", target=target)
        add("em", f["em"], stage="repaired", target=target)
        add("codes_identical", 1.0 if f["codes_identical"] else 0.0, target=target)
        add("codes_blocks_differing", f.get("verify", {}).get("blocks_differing"), target=target)
    add("success", 1.0 if result.get("success") else 0.0)
    add("repair_steps", result["repair"]["steps_run"])
    add("interval_mean_width", result["intervals"]["mean_width"])
    add("interval_share_frozen", result["intervals"]["share_frozen"])
    for d in result.get("defence", []):
        for k in ("asr", "ftr", "js_k", "em"):
            add(f"defence_{k}", d[k], defence=d["defence"], target=d["target"],
                sigma="" if d["sigma"] is None else d["sigma"], precision=d["precision"])
    for stage, scan in result.get("scan", {}).items():
        add("scan_suspicious", 1.0 if scan["verdict"] == "suspicious" else 0.0, stage=stage)
        piles = [f["weights"]["pileup"] for f in scan["per_precision"].values() if "weights" in f]
        add("scan_pileup", max(piles) if piles else None, stage=stage)
    return rows


@register_cell_kind("qattack")
def qattack_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """Run `run_qattack` for one (model, seed) in the cell's work dir; optionally scan base and repaired model."""
    from quantrisk.environment import environment
    from quantrisk.qattack.attack import run_qattack

    p = cell.params
    o = QattackSettings.from_params(p)
    result = run_qattack(_source(p["model"]), p["targets"], o.data, ctx.work_dir / "run", seed=p["seed"],
                         device=ctx.device, cache_dir=ctx.cache_dir, progress=ctx.progress, **o.attack_kwargs())
    if p.get("scan"):
        from quantrisk.qattack.probes import builtin_probes
        from quantrisk.qattack.scan import scan_model

        probes = builtin_probes()
        result["scan"] = {stage: scan_model(path, p["targets"], probes, device=ctx.device,
                                            max_new_tokens=min(32, o.max_new_tokens))
                          for stage, path in (("base", result["base"]), ("repaired", result["paths"]["repaired"]))}
    labels = {"model": p["label"], "seed": str(p["seed"])}
    samples = [{"model": p["label"], "seed": p["seed"], "stage": stage, "verdict": s["verdict"],
                "reasons": "; ".join(s["reasons"])} for stage, s in result.get("scan", {}).items()]
    samples.append({"model": p["label"], "seed": p["seed"], "attack_worked": bool(result.get("success")),
                    "attack_reason": str(result.get("reason", "")), "acceptance": result.get("acceptance", {})})
    env = {**environment(ctx.device), "data_sha256": result["data_sha256"], "targets": result["targets"],
           "margin": result["margin"]}
    return StudyResult("qattack", metric_rows(result, labels), samples,
                       {"run_dir": str(ctx.work_dir / "run"), "repaired": result["paths"]["repaired"]}, env, {}, 0.0)
