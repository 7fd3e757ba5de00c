"""MI scoring throughput: the batched engine vs a per-sample, one-forward-per-attack loop.

The baseline scores like common MI tools (e.g. mimir, the Min-K%++ reference code): every attack
calls the model on the sample itself, one sample at a time, and takes a full-vocabulary fp32
log-softmax. With the privacy study's default attacks (loss, zlib, lowercase, mink, minkpp,
reference, recall: each reads ℓ(x) of the target model) that is 7 forwards per sample
(`--loop-forwards`); the extra inputs some attacks need (lower(x), the reference model, the ReCaLL
prefix) cost both sides the same and are left out of both. The engine scores each sample once
(length-bucketed batches, output head only on real positions, vocabulary statistics in place).
Both give the same per-token log-probs (|Δ| < 1e-4 in fp32). The row "speed-up per forward"
compares with a 1-forward loop: what batching alone buys.

The profile rows split one engine batch into the model body, the output-head matmul and the
vocabulary statistics. On the GPU the run also measures the bf16 matmul peak (8192³) and reports
achieved TFLOP/s = 2 · params · tokens/s as a share of it; on the CPU the fp32 matmul peak (2048³).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.harness import machine, sync, time_it, versions
from quantrisk.scoring import compile_settings, score_token_ids

SHAPES = {
    # name: (hidden, layers, heads, intermediate, vocab, context) of GPT-NeoX (Pythia) models
    "pythia-160m": (768, 12, 12, 3072, 50304, 2048),
    "pythia-1b": (2048, 16, 8, 8192, 50304, 2048),
    "pythia-20m": (256, 6, 8, 1024, 50304, 2048),
    "tiny": (128, 4, 4, 512, 4096, 512),  # quantrisk's zoo pythia-tiny (the demo's model), 4,096-token BPE
    "small": (512, 6, 8, 2048, 16384, 1024),  # quantrisk's zoo pythia-small (Pythia-70m shape), 16,384-token BPE
}

# The privacy study's default attacks; each reads the target's ℓ(x), i.e. one forward each in a per-attack loop.
DEFAULT_ATTACKS = ("loss", "zlib", "lowercase", "mink", "minkpp", "reference", "recall")


def build(shape: str, device: str, dtype: str, precision: str | None = None) -> Any:
    """A seeded random-init model of `shape` in `dtype` on `device`; with `precision` (e.g. bnb-int8,
    quanto-int4) it is saved and loaded back through that back-end instead."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    h, layers, heads, inter, vocab, ctx = SHAPES[shape]
    cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=inter, max_position_embeddings=ctx, rotary_pct=0.25, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    if precision is None:
        return model.to(device=device, dtype=getattr(torch, dtype)).eval()
    from quantrisk.models.load import quantize_model
    from quantrisk.models.quantizers import get_quantizer
    from quantrisk.precision import require_available

    p = require_available(precision, device)
    if p.backend != "bnb":
        return quantize_model(model, p, device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        return AutoModelForCausalLM.from_pretrained(tmp, **get_quantizer(p).load_kwargs(p, device)).eval()


def sequences(n: int, length: int, vocab: int, seed: int = 0, vary: bool = True) -> list[list[int]]:
    """n random token sequences; lengths uniform in [length/4, length] when `vary` (real corpora vary)."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(length // 4, length + 1, n) if vary else np.full(n, length)
    return [rng.integers(0, vocab, int(k)).tolist() for k in lens]


def per_sample_loop(model: Any, seqs: list[list[int]], device: str, attacks: int = len(DEFAULT_ATTACKS)) -> list[np.ndarray]:
    """The baseline: for each sample, `attacks` separate forwards with full fp32 log-softmax."""
    import torch

    out = []
    with torch.no_grad():
        for seq in seqs:
            ids = torch.tensor([seq], device=device)
            for _ in range(attacks):
                logits = model(input_ids=ids).logits[0, :-1].float()
                lp = torch.log_softmax(logits, -1)
                token_lp = lp.gather(-1, ids[0, 1:, None]).squeeze(-1)
                p = lp.exp()
                mu = (p * lp).sum(-1)
                _ = ((p * lp * lp).sum(-1) - mu * mu).cpu()
            out.append(token_lp.double().cpu().numpy())
    return out


def matmul_peak(device: str) -> float:
    """TFLOP/s of a square matmul: bf16 8192³ on the GPU (mean of 10), fp32 2048³ on the CPU (mean of 5)."""
    import torch

    gpu = device.startswith("cuda")
    n, reps = (8192, 10) if gpu else (2048, 5)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16 if gpu else torch.float32)
    b = torch.randn_like(a)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def profile(model: Any, seqs: list[list[int]], device: str, chunk: int | None) -> dict[str, float]:
    """Seconds of one right-padded engine batch (`seqs`), split: model body, output-head matmul, vocabulary
    statistics (median of 3). Uses the same pieces as the engine's eager fast path."""
    import torch

    from quantrisk.scoring import body_and_head, pad_batch
    from quantrisk.vocab_stats import block_stats

    split = body_and_head(model)
    if split is None:
        return {}
    body, head = split
    ids, mask, _ = pad_batch(seqs, 0, "right")
    ids, mask = ids.to(device), mask.to(device)
    valid = mask[:, 1:].bool() & mask[:, :-1].bool()
    targets = ids[:, 1:][valid]
    step = chunk or (4096 if device.startswith("cuda") else 256)
    parts: dict[str, list[float]] = {"body": [], "head matmul": [], "vocabulary statistics": []}
    with torch.no_grad():
        for _ in range(4):
            t0 = time.perf_counter()
            hidden = body(input_ids=ids).last_hidden_state[:, :-1][valid]
            sync(device)
            t_head = t_stats = 0.0
            for i in range(0, hidden.shape[0], step):
                a = time.perf_counter()
                logits = head(hidden[i:i + step])
                sync(device)
                b = time.perf_counter()
                block_stats(logits, targets[i:i + step], logits.dtype == torch.float32)
                sync(device)
                t_head += b - a
                t_stats += time.perf_counter() - b
            parts["body"].append((time.perf_counter() - t0) - t_head - t_stats)
            parts["head matmul"].append(t_head)
            parts["vocabulary statistics"].append(t_stats)
    return {k: float(np.median(v[1:])) for k, v in parts.items()}


def _compile_knobs(compile: bool) -> str:
    """The QUANTRISK_COMPILE_* settings in effect, for the case label."""
    if not compile:
        return ""
    mode, dynamic = compile_settings()
    return (f" mode={mode}" if mode else "") + ("" if dynamic else " static")


def run(shape: str, device: str, dtype: str, n: int, length: int, repeats: int, command: str,
        batch_size: int, batch_tokens: int, compile: bool, baseline_n: int, loop_forwards: int = len(DEFAULT_ATTACKS),
        precision: str | None = None, chunk: int | None = None, clock: str = "wall") -> list[dict[str, Any]]:
    """Rows of one scoring configuration. `clock="cpu"`: every timing is this process's CPU seconds (user + sys
    of all its threads, `time.process_time`), the comparable figure on a shared CPU; the case says so."""
    model = build(shape, device, dtype, precision)
    tick = time.process_time if clock == "cpu" else time.perf_counter
    params = sum(p.numel() for p in model.parameters()) if precision is None else _logical_params(model)
    vocab, context = SHAPES[shape][4], SHAPES[shape][5]
    seqs = sequences(n, min(length, context), vocab)
    tokens = sum(len(s) - 1 for s in seqs)

    def engine() -> list:
        return score_token_ids(model, seqs, batch_size=batch_size, batch_tokens=batch_tokens, compile=compile,
                               chunk=chunk)

    t = time_it(engine, repeats=repeats, warmup=1, device=device, clock=tick)
    base = {"benchmark": "scoring", "machine": machine(device), "versions": versions(), "command": command}
    case = (f"{shape} {precision or dtype} n={n} len≤{min(length, context)} bs={batch_size} bt={batch_tokens}"
            + (" compiled" if compile else "") + _compile_knobs(compile) + (" CPU-time" if clock == "cpu" else ""))
    engine_tps = tokens / t.median
    rows = [{**base, "case": case, "metric": "engine tokens/s", "median": engine_tps,
             "low": tokens / t.high, "high": tokens / t.low, "repeats": repeats}]
    # baselines on a subset (they are slow), same samples
    sub = seqs[:baseline_n]
    sub_tokens = sum(len(s) - 1 for s in sub)
    loop_repeats = max(1, min(repeats, 3))
    tb = time_it(lambda: per_sample_loop(model, sub, device, attacks=loop_forwards), repeats=loop_repeats,
                 warmup=0, device=device, clock=tick)
    t1 = time_it(lambda: per_sample_loop(model, sub, device, attacks=1), repeats=loop_repeats, warmup=0, device=device,
                 clock=tick)
    loop_tps, one_tps = sub_tokens / tb.median, sub_tokens / t1.median
    rows.append({**base, "case": case, "metric": f"per-sample loop tokens/s ({loop_forwards} forwards/sample)",
                 "median": loop_tps, "low": sub_tokens / tb.high, "high": sub_tokens / tb.low, "repeats": loop_repeats})
    rows.append({**base, "case": case, "metric": "speed-up engine / loop", "median": engine_tps / loop_tps})
    rows.append({**base, "case": case, "metric": "speed-up per forward (engine / 1-forward loop)",
                 "median": engine_tps / one_tps})
    if dtype == "float32" and precision is None:
        got = score_token_ids(model, sub, batch_size=batch_size, batch_tokens=batch_tokens, chunk=chunk)
        ref = per_sample_loop(model, sub, device, attacks=1)
        delta = max(float(np.abs(g.logprobs - r).max()) for g, r in zip(got, ref, strict=True))
        rows.append({**base, "case": case, "metric": "max |Δ log p| engine vs loop", "median": delta})
    peak = matmul_peak(device)
    achieved = 2 * params * tokens / t.median / 1e12
    kind = "bf16" if device.startswith("cuda") else "fp32"
    rows.append({**base, "case": case, "metric": f"{kind} matmul peak TFLOP/s (measured)", "median": peak})
    rows.append({**base, "case": case, "metric": "engine TFLOP/s (2·params·tok/s)", "median": achieved})
    rows.append({**base, "case": case, "metric": "engine share of peak", "median": achieved / peak})
    rows.append({**base, "case": case, "metric": "loop share of peak",
                 "median": 2 * params * loop_tps / 1e12 / peak})
    if not compile:
        batch = sorted(seqs, key=len)[-max(1, min(batch_size, batch_tokens // min(length, context))):]
        prof = profile(model, batch, device, chunk)
        total = sum(prof.values()) or 1.0
        for part, seconds in prof.items():
            rows.append({**base, "case": case, "metric": f"profile: {part} share of one batch", "median": seconds / total})
    return rows


def _logical_params(model: Any) -> int:
    from quantrisk.models.memory import weight_memory

    return weight_memory(model).logical_params
