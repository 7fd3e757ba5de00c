"""MI scoring throughput: the batched engine vs a per-sample, one-forward-per-attack loop.

The baseline scores like common MI tools: for every sample and every token-level attack (LOSS,
Min-K%, Min-K%++) one forward pass with a full-vocabulary fp32 log-softmax. The engine scores each
sample once (length-bucketed batches, output head only on real positions, fused vocabulary
statistics). Both must give the same per-token log-probs (|Δ| < 1e-4 in fp32).

On the GPU it also measures the bf16 matmul peak in the same run (8192³) and reports achieved
TFLOP/s = 2 · params · tokens/s as a share of it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.harness import machine, sync, time_it, versions
from quantrisk.scoring import score_token_ids

SHAPES = {
    # name: (hidden, layers, heads, intermediate) of GPT-NeoX (Pythia) models, vocab 50304, context 2048
    "pythia-160m": (768, 12, 12, 3072),
    "pythia-1b": (2048, 16, 8, 8192),
    "pythia-20m": (256, 6, 8, 1024),
}


def build(shape: str, device: str, dtype: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    h, layers, heads, inter = SHAPES[shape]
    cfg = GPTNeoXConfig(vocab_size=50304, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=inter, max_position_embeddings=2048, rotary_pct=0.25, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    return model.to(device=device, dtype=getattr(torch, dtype)).eval()


def sequences(n: int, length: int, vocab: int, seed: int = 0, vary: bool = True) -> list[list[int]]:
    """n random token sequences; lengths uniform in [length/4, length] when `vary` (real corpora vary)."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(length // 4, length + 1, n) if vary else np.full(n, length)
    return [rng.integers(0, vocab, int(k)).tolist() for k in lens]


def per_sample_loop(model: Any, seqs: list[list[int]], device: str, attacks: int = 3) -> list[np.ndarray]:
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
    """bf16 TFLOP/s of an 8192³ matmul (mean of 10 after 3 warm-ups)."""
    import torch

    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(device)
    return 2 * 8192**3 * 10 / (time.perf_counter() - start) / 1e12


def run(shape: str, device: str, dtype: str, n: int, length: int, repeats: int, command: str,
        batch_size: int, batch_tokens: int, compile: bool, baseline_n: int) -> list[dict[str, Any]]:
    model = build(shape, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    seqs = sequences(n, length, 50304)
    tokens = sum(len(s) - 1 for s in seqs)

    def engine() -> list:
        return score_token_ids(model, seqs, batch_size=batch_size, batch_tokens=batch_tokens, compile=compile,
                               chunk=8192)

    t = time_it(engine, repeats=repeats, warmup=1, device=device)
    base = {"benchmark": "scoring", "machine": machine(device), "versions": versions(), "command": command}
    case = f"{shape} {dtype} n={n} len≤{length} bs={batch_size}" + (" compiled" if compile else "")
    rows = [{**base, "case": case, "metric": "engine tokens/s", "median": tokens / t.median,
             "low": tokens / t.high, "high": tokens / t.low, "repeats": repeats}]
    # baseline on a subset (it is slow), same samples
    sub = seqs[:baseline_n]
    sub_tokens = sum(len(s) - 1 for s in sub)
    tb = time_it(lambda: per_sample_loop(model, sub, device), repeats=max(1, min(repeats, 3)), warmup=0, device=device)
    rows.append({**base, "case": case, "metric": "per-sample loop tokens/s", "median": sub_tokens / tb.median,
                 "low": sub_tokens / tb.high, "high": sub_tokens / tb.low, "repeats": max(1, min(repeats, 3))})
    rows.append({**base, "case": case, "metric": "speed-up engine / loop", "median": (tokens / t.median) / (sub_tokens / tb.median)})
    if dtype == "float32":
        got = score_token_ids(model, sub, batch_size=batch_size, batch_tokens=batch_tokens, chunk=8192)
        ref = per_sample_loop(model, sub, device, attacks=1)
        delta = max(float(np.abs(g.logprobs - r).max()) for g, r in zip(got, ref, strict=True))
        rows.append({**base, "case": case, "metric": "max |Δ log p| engine vs loop", "median": delta})
    if device.startswith("cuda"):
        peak = matmul_peak(device)
        achieved = 2 * params * tokens / t.median / 1e12
        rows.append({**base, "case": case, "metric": "bf16 matmul peak TFLOP/s (measured)", "median": peak})
        rows.append({**base, "case": case, "metric": "engine TFLOP/s (2·params·tok/s)", "median": achieved})
        rows.append({**base, "case": case, "metric": "engine share of peak", "median": achieved / peak})
        loop_achieved = 2 * params * sub_tokens / tb.median / 1e12
        rows.append({**base, "case": case, "metric": "loop share of peak", "median": loop_achieved / peak})
    return rows
