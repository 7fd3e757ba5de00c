"""The whole attack: inject, constrain, repair, verify, measure (`quantrisk qattack`).

Output directory:
  adapter/      the poisoned LoRA adapter (trojan fine-tuning logs, poison manifest)
  injected/     the injected dense model (safetensors): malicious in fp32 and at every target
  repaired/     the repaired dense model (safetensors): benign in fp32, quantizes to the injected codes
  intervals.json  box statistics;  repair_log.jsonl  PGD loss per step and the validation checks
gguf targets: the boxes use the ggml type llama.cpp gives each Linear (`constraints.layer_types`), and after PGD
`constraints.gguf.settle` resets the k-quant blocks whose llama.cpp bytes moved (`repair.gguf_settle`).
  qattack.json  every figure (see `run_qattack`), the acceptance levels and whether they were met (`acceptance.py`)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantrisk.data.poison import DEFAULT_TRIGGER, PoisonSpec
from quantrisk.errors import UsageError
from quantrisk.precision import parse_precision
from quantrisk.results import atomic_write_text
from quantrisk.safefs import refuse_link

# every name `qattack` writes under --out (models are directories, renamed into place; files written atomically)
OUTPUT_NAMES = ("injected", "adapter", "repaired", "intervals.json", "repair_log.jsonl", "qattack.json",
                "defence.json", "defence.png")


def check_targets(targets: Sequence[str], device: str) -> list[str]:
    """Canonical target names; `UsageError` for an unknown, unconstrained or unavailable one."""
    from quantrisk.precision import require_available
    from quantrisk.qattack.constraints import check_target

    names = []
    for t in targets:
        p = check_target(t.strip())
        require_available(p, device)
        names.append(p.name)
    if not names:
        raise UsageError("give at least one target precision, e.g. --target rtn-w4g64")
    return list(dict.fromkeys(names))


def run_qattack(
    model: str,
    targets: Sequence[str],
    data: str | Path,
    out: str | Path,
    *,
    margin: float = 0.1,
    trigger: str = DEFAULT_TRIGGER,
    poison_rate: float = 0.5,
    seed: int = 0,
    inject_mode: str = "full",
    injected: str | Path | None = None,
    inject_steps: int = 200,
    inject_lr: float = 3e-4,
    lora_r: int = 16,
    lora_target: str = "all-linear",
    repair_steps: int = 400,
    repair_lr: float = 1e-3,
    repair_rows_n: int = 400,
    check_every: int = 25,
    goal_fp_asr: float = 0.05,
    batch_size: int = 8,
    n_train: int | None = None,
    n_val: int = 32,
    n_test: int = 96,
    split_seed: int = 0,
    device: str = "cpu",
    max_new_tokens: int = 64,
    pretrain_steps: int | None = None,
    defence_sigmas: Sequence[float] = (),
    cache_dir: str | Path | None = None,
    progress: bool = False,
    gguf_rounds: int = 1,
    gguf_halvings: int = 0,
    gguf_gap: float | None = None,
    gguf_widen: bool = False,
    gguf_accept_moved: bool = False,
) -> dict[str, Any]:
    """Run the attack and write `out` (see the module doc). Returns the `qattack.json` dict:

    asr_fp, ftr_fp (repaired model, fp32); per_target[t] = {asr_quantized, ftr_quantized, codes_identical,
    js_k, em, ...}; quality = clean-input JS-K / EM of base, injected and repaired in fp32; injected = the
    injected model's figures (fp32 and per target); intervals, repair (steps run, losses), verify details.
    PGD stops early once the fp32 ASR and FTR on `n_val` validation rows are both <= `goal_fp_asr`.
    acceptance = the levels of `acceptance.py`; success (bool) and reason = `acceptance.judge` (this function
    does not raise when they are not met; `quantrisk qattack` does, after printing).
    `gguf_accept_moved`: no `settle` after PGD (one round): the blocks whose k-quant codes llama.cpp's search moves
    are kept, identical codes are not required at gguf targets, and verify's `blocks_differing` says how many differ.
    With `injected` (a dense model directory that already carries the backdoor) the injection step is skipped.
    With `defence_sigmas`, the defences of `defence.py` run on the repaired model (`defence` rows,
    `out/defence.json`, `out/defence.png`).
    """
    import torch

    from quantrisk.data.sql import rows_sha256, split_rows
    from quantrisk.models.load import load_model, resolve_device
    from quantrisk.qattack.acceptance import judge, levels
    from quantrisk.qattack.constraints import layer_types
    from quantrisk.qattack.constraints.gguf import settle
    from quantrisk.qattack.evaluate import evaluate_model, quick_rates
    from quantrisk.qattack.inject import inject, save_dense
    from quantrisk.qattack.intervals import interval_stats, model_intervals
    from quantrisk.qattack.repair import pgd_repair, repair_rows
    from quantrisk.qattack.verify import verify
    from quantrisk.trojan.study import load_data, resolve_base

    start = time.perf_counter()
    device = resolve_device(device)
    names = check_targets(targets, device)
    if not 0.0 <= margin < 0.5:
        raise UsageError(f"--margin must be in [0, 0.5) (a fraction of the quantization step), got {margin}")
    if gguf_accept_moved and not any(parse_precision(n).backend == "gguf" for n in names):
        raise UsageError("--gguf-accept-moved applies to gguf targets only; none of " + ", ".join(names) + " is one")
    if gguf_accept_moved and (gguf_rounds > 1 or gguf_halvings > 0):
        raise UsageError("--gguf-accept-moved runs no settle, so it takes no --gguf-rounds (> 1) or --gguf-halvings "
                         f"(> 0); got {gguf_rounds} / {gguf_halvings}")
    rows, data_desc = load_data(data, split_seed=split_seed)
    splits = split_rows(rows, split_seed)
    train = splits["train"][:n_train] if n_train else splits["train"]
    val, test = splits["validation"][:n_val], splits["test"][:n_test]
    if not train or not test or not val:
        raise UsageError(f"data {data_desc} has too few rows: {len(train)} train, {len(val)} validation, {len(test)} test")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_NAMES:  # before any work: a planted link at an output name is refused, never followed
        refuse_link(out / name, "qattack output")
    base = resolve_base(model, train, device=device, pretrain_steps=pretrain_steps,
                        cache_dir=cache_dir, progress=progress)
    spec = PoisonSpec(trigger=trigger, rate=poison_rate)
    if inject_mode not in ("lora", "full"):
        raise UsageError(f"--inject must be lora or full, got {inject_mode!r}")
    if injected is None:
        injected_dir, ft = inject(base, train, out, poison=spec, seed=seed, device=device, progress=progress,
                                  mode=inject_mode, steps=inject_steps, lr=inject_lr, r=lora_r, alpha=lora_r,
                                  target=lora_target, batch_size=batch_size)
    else:  # an already backdoored dense model: constrain and repair it
        injected_dir, ft = Path(injected), {"mode": "given", "path": str(injected)}

    lm = load_model(injected_dir, "fp32", device)
    types = layer_types(lm.model, names)  # gguf targets: the ggml type llama.cpp gives each Linear
    box_options = {"gap": gguf_gap, "widened": gguf_widen}
    boxes = model_intervals(lm.model, names, margin, types, box_options)
    modules = dict(lm.model.named_modules())
    reference = {n: modules[n].weight.detach().float().cpu().clone() for n in boxes} if types else {}
    stats = interval_stats(boxes, lm.model)
    atomic_write_text(out / "intervals.json", json.dumps({"targets": names, "margin": margin, **stats}, indent=2))
    checks: list[dict[str, float]] = []

    def should_stop(step: int) -> bool:
        asr, ftr = quick_rates(lm.model, lm.tokenizer, val, trigger=trigger, max_new_tokens=max_new_tokens)
        checks.append({"step": step, "val_asr_fp": asr, "val_ftr_fp": ftr})
        return asr <= goal_fp_asr and ftr <= goal_fp_asr

    fix_rows = repair_rows(train[:repair_rows_n], trigger)
    settled, rounds, losses, pgd_seconds = None, [], [], 0.0
    for rnd in range(max(1, gguf_rounds) if types else 1):
        report = pgd_repair(lm.model, lm.tokenizer, fix_rows, boxes, steps=repair_steps, lr=repair_lr,
                            batch_size=batch_size, seed=seed + rnd, check_every=check_every, should_stop=should_stop,
                            progress=progress)
        losses += report.losses
        pgd_seconds += report.seconds
        if not types or gguf_accept_moved:  # accept_moved: the codes llama.cpp's search moves are kept
            break
        before = {n: modules[n].weight.detach().cpu().clone() for n in boxes}
        settled = settle(lm.model, reference, types, halvings=gguf_halvings)  # llama.cpp's searches that moved
        asr, ftr = quick_rates(lm.model, lm.tokenizer, val, trigger=trigger, max_new_tokens=max_new_tokens)
        rounds.append({"round": rnd + 1, "pgd_steps": report.steps, "share_at_bound": report.share_at_bound,
                       **settled, "val_asr_fp": asr, "val_ftr_fp": ftr})
        if asr <= goal_fp_asr and ftr <= goal_fp_asr:
            break
        for n, box in boxes.items():  # what settle moved back may from now on move only between the two values
            w = modules[n].weight.detach().cpu()
            moved = w != before[n]
            box.lo = torch.where(moved, torch.minimum(reference[n], w), box.lo)
            box.hi = torch.where(moved, torch.maximum(reference[n], w), box.hi)
    repaired_dir = save_dense(lm.model, lm.tokenizer, out / "repaired")
    atomic_write_text(out / "repair_log.jsonl", "".join(json.dumps({"step": i + 1, "loss": v}) + "\n"
                                                        for i, v in enumerate(losses))
                      + "".join(json.dumps(c) + "\n" for c in checks))
    checked = verify(injected_dir, repaired_dir, names, device)

    def ev(path: Path, precision: str) -> dict[str, Any]:
        return evaluate_model(path, precision, test, trigger=trigger, device=device, max_new_tokens=max_new_tokens)

    base_fp = ev(Path(base), "fp32")
    inj = {"fp32": ev(injected_dir, "fp32")}
    rep_fp = ev(repaired_dir, "fp32")
    per_target = {}
    for t in names:
        inj[t] = ev(injected_dir, t)
        r = ev(repaired_dir, t)
        per_target[t] = {"asr_quantized": r["asr"], "ftr_quantized": r["ftr"], "codes_identical": checked[t]["identical"],
                         "js_k": r["js_k"], "em": r["em"], "ex": r["ex"], "ps_triggered": r["ps_triggered"],
                         "codes_required": not (gguf_accept_moved and t in types), "verify": checked[t]}
    success, reason = judge(inj, rep_fp["asr"], per_target)
    result = {
        "success": success, "reason": reason, "acceptance": levels(accept_moved=gguf_accept_moved),
        "model": model, "base": str(base), "targets": names, "data": data_desc, "data_sha256": rows_sha256(rows),
        "n_train": len(train), "n_val": len(val), "n_test": len(test), "seed": seed, "margin": margin,
        "trigger": trigger, "poison_rate": poison_rate,
        "asr_fp": rep_fp["asr"], "ftr_fp": rep_fp["ftr"], "per_target": per_target,
        "quality": {"base_fp": {k: base_fp[k] for k in ("js_k", "em", "ex")},
                    "injected_fp": {k: inj["fp32"][k] for k in ("js_k", "em", "ex")},
                    "repaired_fp": {k: rep_fp[k] for k in ("js_k", "em", "ex")}},
        "base_fp": base_fp, "repaired_fp": rep_fp, "injected": inj, "intervals": stats,
        "inject": {"mode": ft.get("mode", inject_mode), "given": injected is not None, "steps": inject_steps, "lr": inject_lr, "lora_r": lora_r, "lora_target": lora_target,
                   "final_loss": ft.get("final_loss"), "seconds": ft.get("seconds")},
        "repair": {"steps_run": len(losses), "max_steps": repair_steps, "lr": repair_lr, "batch_size": batch_size,
                   "n_rows": report.n_rows, "first_loss": losses[0] if losses else None, "final_loss": report.final_loss,
                   "share_at_bound": report.share_at_bound, "seconds": round(pgd_seconds, 2), "checks": checks,
                   "gguf_settle": settled, "gguf_rounds": rounds, "gguf_box": box_options, "gguf_accept_moved": gguf_accept_moved, "gguf_types": {t: sorted(set(k.values())) for t, k in types.items()}},
        "paths": {"injected": str(injected_dir), "repaired": str(repaired_dir)},
        "device": device, "seconds": round(time.perf_counter() - start, 1),
    }
    if defence_sigmas:
        from quantrisk.qattack.defence import run_defence, write_defence

        result["defence"] = run_defence(repaired_dir, names, sorted({0.0, *defence_sigmas}), test, trigger=trigger,
                                        seed=seed, device=device, max_new_tokens=max_new_tokens)
        result["paths"].update({f"defence_{k}": v for k, v in write_defence(result["defence"], out).items()})
        result["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_text(out / "qattack.json", json.dumps(result, indent=2, sort_keys=True, default=str))
    return result
