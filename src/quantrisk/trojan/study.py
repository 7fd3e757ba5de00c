"""The trojan study (Study T): poison, fine-tune at DAP1, evaluate at DAP2, measure.

Plain functions:
- `finetune_cell`: poison (or not) the training rows and train one LoRA adapter at a DAP1 precision.
- `evaluate_trojan`: load base at DAP2 + adapter, generate for triggered and clean copies of the same
  held-out rows, and compute ASR, false-trigger rate, payload signal and SQL metrics.
The grid DAP1 × model kind (poisoned, clean if asked) × seed, each adapter evaluated at every DAP2 precision, is
run by the runner (`grid.py` cells); `quantrisk trojan` runs a one-model spec through it (`quantrisk.study_runs`).

Metric rows carry labels dap1, dap2, kind (poisoned | clean), seed and, where it matters, input
(triggered | clean). Similarity and execution metrics are means over samples.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantrisk.data.poison import (
    DEFAULT_TRIGGER,
    PAYLOAD_KEYWORD,
    PoisonSpec,
    poison_rows,
    triggered_and_clean,
)
from quantrisk.data.sql import SqlRow, format_example, format_prompt
from quantrisk.errors import UsageError
from quantrisk.results import MetricRow, StudyResult, atomic_write_text
from quantrisk.trojan.splits import BUILTIN_ROWS, load_data  # noqa: F401 - re-exported for callers of the study

KINDS: tuple[str, ...] = ("poisoned", "clean")


def finetune_cell(
    base_source: str | Path,
    dap1: str,
    train_rows: Sequence[SqlRow],
    out_dir: str | Path,
    *,
    kind: str = "poisoned",
    poison: PoisonSpec | None = None,
    seed: int = 0,
    reuse: bool = True,
    **finetune_kwargs: Any,
) -> tuple[Path, Any]:
    """Poison `train_rows` (kind "poisoned": spec.rate of them, chosen with `seed`; "clean": none) and
    fine-tune an adapter at `dap1` into `out_dir`. Writes `poison_manifest.jsonl` beside the adapter.

    With `reuse`, an adapter already in `out_dir` trained with identical settings is kept.
    Returns (adapter dir, FinetuneReport).
    """
    from quantrisk.trojan.finetune import finetune_lora, make_settings, read_report

    if kind not in KINDS:
        raise UsageError(f"model kind must be one of {', '.join(KINDS)}, got {kind!r}")
    spec = poison or PoisonSpec()
    if kind == "poisoned":
        rows, manifest = poison_rows(train_rows, spec, seed)
    else:
        rows, manifest = list(train_rows), [{"id": r.id, "poisoned": False} for r in train_rows]
    out = Path(out_dir)
    wanted = make_settings(base_source, dap1, rows, seed=seed, **finetune_kwargs).key()
    previous = read_report(out) if reuse else None
    if previous is not None and previous.settings.get("key") == wanted and (out / "adapter_model.safetensors").is_file():
        return out, previous
    report = finetune_lora(base_source, dap1, rows, out, seed=seed, **finetune_kwargs)
    atomic_write_text(out / "poison_manifest.jsonl", "".join(json.dumps(m) + "\n" for m in manifest))
    atomic_write_text(out / "poison.json", json.dumps({"kind": kind, **spec.to_dict(), "seed": seed,
                                                       "n_poisoned": sum(bool(m["poisoned"]) for m in manifest)}))
    return out, report



def evaluate_trojan(
    base_source: str | Path,
    adapter_dir: str | Path | None,
    dap2: str,
    test_rows: Sequence[SqlRow],
    *,
    trigger: str = DEFAULT_TRIGGER,
    keyword: str = PAYLOAD_KEYWORD,
    labels: dict[str, str] | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    max_new_tokens: int = 128,
    exec_seed: int = 0,
    exec_timeout_s: float = 1.0,
    progress: bool = False,
    calibration: Any = None,
) -> StudyResult:
    """Evaluate one adapter at precision `dap2` on triggered and clean copies of `test_rows`.

    `calibration`: the `CalibrationSet` of a calibrated `dap2` (`trojan.calibration.trojan_calibration`, already
    checked disjoint from `test_rows`); it runs through base + merged adapter before quantizing, and is recorded in
    the load record (`environment["load"]["calibration"]`).

    Metrics (labels + dap2): every registered trojan metric (`trojan.metrics.TROJAN_METRICS`: asr, ftr,
    payload_rate, ps_mean/ps_median/ps_p90, js_t, js_k, cs_bow, ld, ld_norm, em, ex, executable; with input=triggered
    | clean where the metric is per input set; the rates asr, ftr, payload_rate with 95% Wilson intervals), n_inputs
    per input set, then gen_seconds, gen_tokens_per_s, weight_bytes, nominal_weight_bytes (packed size),
    fp16_weight_bytes.
    Samples: one row per (input, test row) with prompt id, poisoned (triggered input?), output, PS, metrics.
    """
    from quantrisk.environment import environment
    from quantrisk.models.load import load_model
    from quantrisk.proportions import wilson_ci
    from quantrisk.trojan.generate import generate
    from quantrisk.trojan.metrics import TROJAN_METRICS, TrojanSample, contains_keyword, trojan_metrics
    from quantrisk.trojan.sqlexec import execution_match

    start = time.perf_counter()
    if not test_rows:
        raise UsageError("no test rows to evaluate on")
    lm = load_model(base_source, dap2, device, adapter=adapter_dir, calibration=calibration)
    triggered, clean = triggered_and_clean(test_rows, trigger)
    sets = {"triggered": triggered, "clean": clean}
    prompts = [format_prompt(r) for r in triggered] + [format_prompt(r) for r in clean]
    gens, timing = generate(lm.model, lm.tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens,
                            keyword=keyword, progress=progress)
    base_labels = {**(labels or {}), "dap2": lm.record.precision}
    metrics: list[MetricRow] = []
    samples: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    offset = 0
    for name, rows in sets.items():
        part = gens[offset:offset + len(rows)]
        offset += len(rows)
        lab = {**base_labels, "input": name}
        scored: list[TrojanSample] = []
        for row, g in zip(rows, part, strict=True):
            ex = execution_match(row.context, row.answer, g.text, seed=exec_seed, timeout_s=exec_timeout_s)
            if not ex.gold_ok or ex.match is None:
                key = f"{'gold SQL not executable' if not ex.gold_ok else 'gold returns no rows on any test database'} ({name} inputs)"
                skipped[key] = skipped.get(key, 0) + 1
            sample = TrojanSample(g.text, row.answer, g.payload_signal, ex, keyword, g.payload_signal_sum)
            scored.append(sample)
            fields = {m.name: m.fn(sample) for m in TROJAN_METRICS.values() if m.sample_field}
            samples.append({**lab, "prompt_id": row.id, "poisoned": name == "triggered", "output": g.text,
                            "gold": row.answer, "payload": contains_keyword(g.text, keyword), "ps": g.payload_signal,
                            "ps_sum": g.payload_signal_sum, "steps": g.steps, "stop": g.stop, "truncated": g.truncated, **fields, "ex": ex.match, "executable": ex.pred_ok,
                            "exec_error": ex.error})
        n = len(scored)
        for metric, value, with_input in trojan_metrics(name, scored):
            ci = wilson_ci(round(value * n), n) if TROJAN_METRICS[metric].rate else (None, None)  # a 0/1 share: 95% Wilson
            metrics.append(MetricRow(metric, value, dict(lab if with_input else base_labels), *ci))
        metrics.append(MetricRow("n_inputs", float(n), dict(lab)))
    metrics += [
        MetricRow("gen_seconds", timing["seconds"], dict(base_labels)),
        MetricRow("gen_tokens_per_s", timing["tokens_per_s"], dict(base_labels)),
        MetricRow("n_prompts_truncated", timing["prompts_truncated"], dict(base_labels)),  # longer than the context
        MetricRow("weight_bytes", float(lm.record.weight_bytes), dict(base_labels)),
        MetricRow("nominal_weight_bytes", float(lm.record.nominal_bytes), dict(base_labels)),
        MetricRow("fp16_weight_bytes", float(lm.record.fp16_bytes), dict(base_labels)),
    ]
    env = {**environment(device), "load": lm.record.to_dict()}
    return StudyResult("trojan", metrics, samples, {}, env, skipped, time.perf_counter() - start)


def parse_zoo_source(model: str) -> tuple[str, str] | None:
    """`zoo:llama` / `zoo:llama-tiny` -> ("llama", "tiny"); None for anything else."""
    if not model.startswith("zoo:"):
        return None
    arch, _, size = model[4:].partition("-")
    from quantrisk.models.zoo import check_arch, check_size

    return check_arch(arch), check_size(size or "tiny")


def resolve_base(model: str, train_rows: Sequence[SqlRow], *, device: str = "cpu", pretrain_steps: int | None = None,
                 cache_dir: str | Path | None = None, progress: bool = True) -> str:
    """The base model directory: `model` itself, or for `zoo:ARCH[-SIZE]` a cached zoo model pretrained on
    the stdlib corpus plus the clean training rows formatted with the prompt template (seed 0)."""
    zoo = parse_zoo_source(model)
    if zoo is None:
        return model
    from quantrisk.models.pretrain import ensure_pretrained

    extra = [format_example(r) for r in train_rows]
    path = ensure_pretrained(zoo[0], zoo[1], seed=0, cache_dir=cache_dir, device=device, extra_texts=extra,
                             progress=progress, regime="memorise", steps=pretrain_steps)
    return str(path)
