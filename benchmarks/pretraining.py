"""Pretraining throughput of the packed loop (`quantrisk.models.trainloop.train_packed`, the exposure regime's).

For each zoo size: a Pythia-architecture model with the size's exposure-regime vocabulary, trained on a
random-token stream (steps x batch x seq_len, pre-tokenised, one contiguous tensor) exactly as
`pretrain --regime exposure` trains: bf16 autocast, SDPA attention, torch.compile of forward + loss,
fused AdamW, no per-step host synchronisation (on CUDA). Rows per size: steady tokens/s (steps after
the first `--warm-steps`, which include compilation; the case names the attention path and the loss), and on CUDA the model FLOP utilisation
MFU = 6 * P * tokens/s / peak, P = all parameters (embeddings included, as the issue's reference step
counts them), peak = the bf16 matmul TFLOP/s measured in the same run (8192^3, `benchmarks.scoring`).
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import machine, versions


def run(sizes: list[str], device: str, steps: int, warm_steps: int, batch_size: int | None, seq_len: int | None,
        compile: bool | None, command: str, arch: str = "pythia", attention: str | None = None,
        loss: str | None = None, compile_mode: str | None = None, sdpa_backend: str | None = None,
        profile: str | None = None) -> list[dict[str, Any]]:
    import torch

    from benchmarks.scoring import matmul_peak
    from quantrisk.models.pretrain import EXPOSURE_DEFAULTS
    from quantrisk.models.trainloop import train_packed
    from quantrisk.models.zoo import build_model

    cuda = device.startswith("cuda")
    rows: list[dict[str, Any]] = []
    peak = matmul_peak(device) if cuda else None
    base = {"benchmark": "pretraining", "machine": machine(device), "versions": versions(), "command": command,
            "repeats": 1}
    if peak is not None:
        rows.append({**base, "case": "bf16 matmul 8192^3", "metric": "peak TFLOP/s (measured)", "median": peak})
    for size in sizes:
        d = EXPOSURE_DEFAULTS[size]
        b, L, vocab = batch_size or d["batch_size"], seq_len or d["seq_len"], d["vocab_size"]
        model = build_model(arch, size, vocab, seed=0).to(device)
        params = sum(p.numel() for p in model.parameters())
        gen = torch.Generator().manual_seed(0)
        tokens = torch.randint(1, vocab, (steps, b, L), generator=gen, dtype=torch.int32)
        prof, progress = _profiler(profile, steps, size) if profile else (None, None)
        stats = train_packed(model, tokens, lr=d["lr"], warmup=2, device=device, compile=compile,
                             warm_steps=warm_steps, log_every=max(steps, 1), attention=attention, loss=loss,
                             compile_mode=compile_mode, sdpa_backend=sdpa_backend, progress=progress)
        if prof is not None:
            prof.stop()
        tps = stats.steady_tokens_per_s
        mode = ("bf16 " if cuda else "fp32 ") + ("compiled" if stats.compiled else "eager")
        mode += f"{'' if compile_mode is None else ' ' + compile_mode}, attention {stats.attention}, loss {stats.loss}"
        mode += "" if sdpa_backend is None else f", sdpa {sdpa_backend} first"
        case = f"{arch}-{size} ({params / 1e6:.1f}M params) batch {b}x{L} {mode}"
        rows.append({**base, "case": case, "metric": "tokens/s (steady)", "median": tps})
        rows.append({**base, "case": case, "metric": "seconds of the warm-up steps (incl. compile)", "median": stats.warm_seconds})
        if peak is not None:
            achieved = 6 * params * tps / 1e12
            rows.append({**base, "case": case, "metric": "achieved TFLOP/s (6*P*tokens/s)", "median": achieved})
            rows.append({**base, "case": case, "metric": "MFU (share of measured peak)", "median": achieved / peak})
            rows.append({**base, "case": case, "metric": "seconds per 100M tokens", "median": 1e8 / tps})
        del model, tokens
        if cuda:
            torch.cuda.empty_cache()
    return rows


def _profiler(path: str, steps: int, size: str) -> tuple[Any, Any]:
    """A torch profiler over the last 3 steps; on stop it writes the top CUDA kernels to `path`-`size`.txt."""
    from torch.profiler import ProfilerActivity, profile, schedule

    def write(p: Any) -> None:
        table = p.key_averages().table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=90)
        with open(f"{path}-{size}.txt", "w") as fh:
            fh.write(table)

    wait = max(steps - 4, 0)
    prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                   schedule=schedule(wait=wait, warmup=1, active=3, repeat=1), on_trace_ready=write)
    prof.start()
    return prof, lambda step: prof.step()
