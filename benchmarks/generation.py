"""Trojan inference: batched greedy generation vs one prompt at a time, same prompts, same outputs.

Prompts are the trojan study's test prompts (Study T template over the built-in text-to-SQL rows,
half with the trigger phrase), the model is the study's zoo base (`zoo:llama-tiny` by default,
pretrained on the stdlib plus the clean training prompts; cached) or `--model DIR`. Both sides run
`quantrisk.trojan.generate.generate` with the study's stop rule (EOS or a newline) and
`max_new_tokens`; the batched side sorts prompts by length and left-pads `--gen-batch-size` at a
time, the baseline calls it with batch size 1. Rows: generated tokens/s of each, the ratio, and
how many of the outputs are identical (text and step count).
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import machine, time_it, versions


def prompts_and_base(model: str, n: int, device: str) -> tuple[str, list[str]]:
    """(model directory, n test prompts: the first half triggered, the rest clean) as the trojan study builds them."""
    from quantrisk.data.poison import trigger_question
    from quantrisk.data.sql import format_prompt, split_rows
    from quantrisk.trojan.study import load_data, resolve_base

    rows, _ = load_data("builtin", split_seed=0, n_builtin=600)
    splits = split_rows(rows, 0)
    base = resolve_base(model, splits["train"], device=device, progress=False)
    test = (splits["test"] * (n // max(1, len(splits["test"])) + 1))[:n]
    half = n // 2
    prompts = [format_prompt(r, trigger_question(r.question)) for r in test[:half]]
    prompts += [format_prompt(r) for r in test[half:]]
    return base, prompts


def run(model: str, device: str, precision: str, n: int, baseline_n: int, batch_size: int, max_new_tokens: int,
        repeats: int, command: str) -> list[dict[str, Any]]:
    from quantrisk.models.load import load_model
    from quantrisk.trojan.generate import generate

    base, prompts = prompts_and_base(model, n, device)
    loaded = load_model(base, precision, device)
    m, tok = loaded.model, loaded.tokenizer
    state: dict[str, Any] = {}

    def batched() -> None:
        state["batched"] = generate(m, tok, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens)

    def one_at_a_time() -> None:
        state["single"] = generate(m, tok, prompts[:baseline_n], batch_size=1, max_new_tokens=max_new_tokens)

    tb = time_it(batched, repeats=repeats, warmup=1, device=device)
    loop_repeats = max(1, min(repeats, 3))
    ts = time_it(one_at_a_time, repeats=loop_repeats, warmup=0, device=device)
    gens_b, _ = state["batched"]
    gens_s, _ = state["single"]
    tok_b = sum(g.steps for g in gens_b)
    tok_s = sum(g.steps for g in gens_s)
    same = sum(a.text == b.text and a.steps == b.steps for a, b in zip(gens_b[:baseline_n], gens_s, strict=True))
    name = model if model.startswith("zoo:") else base.rstrip("/").split("/")[-1]
    case = f"{name} {precision} n={n} bs={batch_size} max_new={max_new_tokens}"
    common = {"benchmark": "generation", "case": case, "machine": machine(device), "versions": versions(),
              "command": command}
    batched_tps, single_tps = tok_b / tb.median, tok_s / ts.median
    return [
        {**common, "metric": "batched generated tokens/s", "median": batched_tps, "low": tok_b / tb.high,
         "high": tok_b / tb.low, "repeats": repeats},
        {**common, "metric": f"one-at-a-time generated tokens/s (first {baseline_n})", "median": single_tps,
         "low": tok_s / ts.high, "high": tok_s / ts.low, "repeats": loop_repeats},
        {**common, "metric": "speed-up batched / one-at-a-time", "median": batched_tps / single_tps},
        {**common, "metric": f"identical outputs (of {baseline_n})", "median": float(same)},
        {**common, "metric": "mean generated tokens per prompt", "median": tok_b / len(gens_b)},
    ]
