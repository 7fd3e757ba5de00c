"""The packed training loop (exposure regime, and the pretraining benchmark): fixed-shape steps of a
pre-tokenised contiguous tensor, run at the hardware's speed.

On CUDA: the whole stream is copied to the GPU once (int32), bf16 autocast, SDPA attention, the forward
and the loss compiled together (`torch.compile`), fused AdamW, gradient clipping on the device, and no
host synchronisation inside the loop (losses are kept on the device and read every `log_every` steps).
On CPU: the same loop in fp32, uncompiled unless asked (compiling costs more than it saves at CPU sizes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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


def lr_schedule(lr: float, warmup: int, steps: int) -> Callable[[int], float]:
    """Linear warm-up over `warmup` steps, then cosine decay to 10% of `lr` at the last step."""

    def at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    return at


def _loss_fn(model: Any) -> Callable[[Any], Any]:
    import torch.nn.functional as F

    def loss(ids: Any) -> Any:
        logits = model(input_ids=ids, use_cache=False).logits
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())

    return loss


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
) -> TrainStats:
    """Train `model` (already on `device`) on `tokens` (int array/tensor steps x batch x seq_len), one
    optimizer step per row block, labels = inputs shifted by one (every position, documents packed).
    `compile=None` compiles on CUDA only. `progress(step)` is called after each step if given."""
    import numpy as np
    import torch

    cuda = device.startswith("cuda")
    compile = cuda if compile is None else compile
    data = torch.as_tensor(np.asarray(tokens), dtype=torch.int32) if not isinstance(tokens, torch.Tensor) else tokens
    data = data.to(device, non_blocking=False)
    steps = int(data.shape[0])
    per_step = int(data.shape[1] * data.shape[2])
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98),
                            fused=True if cuda else None)
    lr_at = lr_schedule(lr, warmup, steps)
    eager = _loss_fn(model)
    fn = torch.compile(eager) if compile else eager
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
                      losses=[(s, float(v)) for s, v in logged], compiled=compiled)
