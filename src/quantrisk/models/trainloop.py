"""The packed training loop (exposure regime, and the pretraining benchmark): fixed-shape steps of a
pre-tokenised contiguous tensor, run at the hardware's speed.

On CUDA: the whole stream is copied to the GPU once (int32), bf16 autocast, SDPA attention with `is_causal` and no
materialised mask (`causal_attention.py`: transformers builds an explicit mask under `torch.compile`, which rules
out flash attention; for GPT-NeoX also its QKV split and rotary embedding kept token-major, `neox_attention.py`),
the forward and the loss compiled together (`torch.compile`), fused AdamW, gradient
clipping on the device, and no host synchronisation inside the loop (losses are kept on the device and read every
`log_every` steps). Optionally the output head and the cross-entropy are fused (Liger's fused linear
cross-entropy, `loss="liger-fused"`), which never materialises the (tokens x vocab) logits.
On CPU: the same loop in fp32, uncompiled unless asked (compiling costs more than it saves at CPU sizes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainStats:
    """What a packed run did. `seconds` covers every step; `steady_tokens_per_s` excludes the first
    `warm_steps` (compilation, allocator warm-up); `losses` are (step, mean loss of the step) every log_every."""

    steps: int
    tokens: int
    seconds: float
    warm_steps: int
    warm_seconds: float
    steady_tokens_per_s: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    compiled: bool = False
    attention: str = "model"
    loss: str = "cross-entropy"


def lr_schedule(lr: float, warmup: int, steps: int) -> Callable[[int], float]:
    """Linear warm-up over `warmup` steps, then cosine decay to 10% of `lr` at the last step."""

    def at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    return at


LOSSES: tuple[str, ...] = ("cross-entropy", "liger-fused")
ATTENTIONS: tuple[str, ...] = ("model", "packed-causal", "packed-causal-token-major")


def _loss_fn(model: Any, loss: str, compile: bool, compile_mode: str | None) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(step function, its eager twin) mapping ids (batch, seq_len) to the mean next-token cross-entropy."""
    import torch
    import torch.nn.functional as F

    def _compiled(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if not compile:
            return fn
        if compile_mode == "coordinate-descent":  # inductor tunes its generated kernels' block sizes
            return torch.compile(fn, options={"coordinate_descent_tuning": True})
        return torch.compile(fn, mode=compile_mode)

    if loss == "cross-entropy":
        def plain(ids: Any) -> Any:
            logits = model(input_ids=ids, use_cache=False).logits
            return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())

        def unsliced(ids: Any) -> Any:
            # The same mean over the same (row, position) pairs, eagerly without slicing the logits: each row's last
            # position gets the ignored label instead. Slicing copies the (batch, seq_len, vocab) logits forward and
            # zero-fills then copies a tensor that size backward (11% of a tiny model's CPU step; a compiled step
            # fuses the slice away, so it keeps `plain`).
            logits = model(input_ids=ids, use_cache=False).logits
            targets = F.pad(ids[:, 1:], (0, 1), value=-100)
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)

        return (_compiled(plain), plain) if compile else (unsliced, unsliced)
    if loss != "liger-fused":
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    # Liger's fused linear cross-entropy (chunked head matmul + CE + its gradients, Triton; CUDA only): the
    # backbone is compiled, the fused head runs as Liger's own autograd function.
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    head = model.get_output_embeddings()
    backbone = model.base_model
    flce = LigerFusedLinearCrossEntropyLoss()

    def hidden(ids: Any) -> Any:
        h = backbone(input_ids=ids, use_cache=False).last_hidden_state
        return h[:, :-1].flatten(0, 1).to(torch.bfloat16)

    def fused_with(h_fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def fused(ids: Any) -> Any:
            return flce(head.weight.to(torch.bfloat16), h_fn(ids), ids[:, 1:].flatten().long(),
                        None if head.bias is None else head.bias.to(torch.bfloat16))

        return fused

    return fused_with(_compiled(hidden)), fused_with(hidden)


def train_packed(
    model: Any,
    tokens: Any,
    *,
    lr: float,
    warmup: int,
    weight_decay: float = 0.0,
    device: str = "cpu",
    compile: bool | None = None,
    log_every: int = 10,
    warm_steps: int = 3,
    progress: Any = None,
    attention: str | None = None,
    loss: str | None = None,
    compile_mode: str | None = None,
    sdpa_backend: str | None = None,
) -> TrainStats:
    """Train `model` (already on `device`) on `tokens` (int array/tensor steps x batch x seq_len), one
    optimizer step per row block, labels = inputs shifted by one (every position, documents packed).
    `compile=None` compiles on CUDA only. `progress(step)` is called after each step if given.
    `attention`: "packed-causal" (SDPA `is_causal`, no mask; exact here because rows are unpadded; models that
    cannot use it keep theirs), "packed-causal-token-major" (the same, and GPT-NeoX's QKV split and rotary
    embedding in the projection's token-major layout, `neox_attention.py`; other models get packed-causal) or
    "model" (the model's own); None = packed-causal-token-major when compiling (on an H100 it trains base 4% faster
    than packed-causal: BENCHMARKS.md, "Pretraining"), else the model's own.
    `loss`: "cross-entropy" or "liger-fused" (CUDA + the `liger-kernel` package); None = liger-fused on CUDA when
    liger-kernel is installed, else cross-entropy. `compile_mode`: torch.compile's mode (None = default; e.g.
    "max-autotune-no-cudagraphs"), or "coordinate-descent" (inductor's coordinate-descent kernel tuning).
    `sdpa_backend`: put one of SDPA's kernels first ("cudnn", "flash", "efficient"; None = PyTorch's order)."""
    import importlib.util

    cuda = device.startswith("cuda")
    compile = cuda if compile is None else compile
    attention = attention or ("packed-causal-token-major" if compile else "model")
    loss = loss or ("liger-fused" if cuda and importlib.util.find_spec("liger_kernel") is not None else "cross-entropy")
    if attention not in ATTENTIONS:
        raise ValueError(f"unknown attention {attention!r}; valid: {', '.join(ATTENTIONS)}")
    with _attention_path(model, attention) as used, _sdpa_first(sdpa_backend):
        return _train(model, tokens, lr=lr, warmup=warmup, weight_decay=weight_decay, device=device,
                      compile=compile, log_every=log_every, warm_steps=warm_steps, progress=progress,
                      attention=used, loss_kind=loss, compile_mode=compile_mode)


@contextmanager
def _attention_path(model: Any, attention: str) -> Iterator[str]:
    """Switch `model` to the asked attention path for the block; yields the path it actually runs (a model that
    cannot take a path falls back: token-major -> packed-causal -> model)."""
    from quantrisk.models.causal_attention import packed_causal_attention
    from quantrisk.models.neox_attention import token_major_attention

    if attention == "model":
        yield "model"
        return
    with token_major_attention(model) if attention == "packed-causal-token-major" else nullcontext(False) as major:
        if major:
            yield "packed-causal-token-major"
            return
        with packed_causal_attention(model) as switched:
            yield "packed-causal" if switched else "model"


SDPA_BACKENDS: tuple[str, ...] = ("cudnn", "flash", "efficient")


def _sdpa_first(backend: str | None) -> Any:
    """Context in which SDPA tries `backend` first, then the others (PyTorch's `sdpa_kernel` priority order)."""
    if backend is None:
        return nullcontext()
    if backend not in SDPA_BACKENDS:
        raise ValueError(f"unknown SDPA backend {backend!r}; valid: {', '.join(SDPA_BACKENDS)}")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kinds = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION}
    order = [kinds[backend]] + [k for name, k in kinds.items() if name != backend] + [SDPBackend.MATH]
    return sdpa_kernel(order, set_priority=True)


def _train(model: Any, tokens: Any, *, lr: float, warmup: int, weight_decay: float, device: str, compile: bool,
           log_every: int, warm_steps: int, progress: Any, attention: str, loss_kind: str,
           compile_mode: str | None) -> TrainStats:
    import numpy as np
    import torch

    cuda = device.startswith("cuda")
    data = torch.as_tensor(np.asarray(tokens), dtype=torch.int32) if not isinstance(tokens, torch.Tensor) else tokens
    data = data.to(device, non_blocking=False)
    steps = int(data.shape[0])
    per_step = int(data.shape[1] * data.shape[2])
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98),
                            fused=True if cuda else None)
    lr_at = lr_schedule(lr, warmup, steps)
    fn, eager = _loss_fn(model, loss_kind, compile, compile_mode)
    params = [p for p in model.parameters() if p.requires_grad]
    logged: list[tuple[int, Any]] = []
    warm_steps = min(warm_steps, max(steps - 1, 0))
    warm_seconds = 0.0
    compiled = bool(compile)
    start = time.perf_counter()
    for step in range(steps):
        if step == warm_steps and warm_steps:
            if cuda:
                torch.cuda.synchronize()
            warm_seconds = time.perf_counter() - start
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        ids = data[step].long()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            if step == 0 and fn is not eager:
                try:  # a model torch.compile cannot trace still trains, eagerly (and says so)
                    loss = fn(ids)
                except Exception as exc:  # noqa: BLE001 - dynamo/inductor raise many types
                    import warnings

                    warnings.warn(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); training eagerly",
                                  stacklevel=2)
                    fn, compiled = eager, False
                    opt.zero_grad(set_to_none=True)
                    loss = fn(ids)
            else:
                loss = fn(ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % log_every == 0 or step == steps - 1:
            logged.append((step, loss.detach()))
        if progress is not None:
            progress(step)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    steady = (steps - warm_steps) * per_step / max(seconds - warm_seconds, 1e-9)
    return TrainStats(steps=steps, tokens=steps * per_step, seconds=seconds, warm_steps=warm_steps,
                      warm_seconds=warm_seconds, steady_tokens_per_s=steady,
                      losses=[(s, float(v)) for s, v in logged], compiled=compiled, attention=attention, loss=loss_kind)
