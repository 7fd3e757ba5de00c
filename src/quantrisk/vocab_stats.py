"""Per-position statistics over the vocabulary, from logits, without a full-vocabulary fp32 log-softmax.

For logits l (T, V) and targets y (T,), with p = softmax(l):
    logp_target = l_y - logsumexp(l)
    mu          = Σ_v p_v log p_v
    var         = Σ_v p_v (log p_v)² - mu²      (= the variance of l under p: log p = l - lse)
Computed from three shifted sums over exp(l - max) (s0, s1, s2), chunked over T, so the peak
extra memory is one (chunk, V) fp32 block. On CUDA the block function can be compiled
(`torch.compile`) so the reductions fuse into a couple of passes over the bf16 logits.
"""

from __future__ import annotations

from typing import Any


def block_stats(logits: Any, targets: Any, inplace: bool = False) -> tuple[Any, Any, Any]:
    """The three statistics of one (T, V) block. `inplace` (eager only): `logits` is a scratch fp32 tensor
    the caller does not need again; it is overwritten, which saves two (T, V) allocations and passes."""
    import torch

    if inplace and logits.dtype == torch.float32:
        # 2 allocations-free passes fewer than the readable form below; same numbers
        d = logits.sub_(logits.amax(dim=-1, keepdim=True))
        target_d = d.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        e = torch.exp(d)
        s0 = e.sum(-1)
        ed = e.mul_(d)
        s1 = ed.sum(-1)
        s2 = torch.linalg.vecdot(ed, d)
        log_s0 = torch.log(s0)
        mean_d = s1 / s0
        return target_d - log_s0, mean_d - log_s0, (s2 / s0 - mean_d * mean_d).clamp_min(0.0)
    x = logits.float()
    m = x.amax(dim=-1, keepdim=True)
    d = x - m
    e = torch.exp(d)
    s0 = e.sum(-1)
    s1 = (e * d).sum(-1)
    s2 = (e * d * d).sum(-1)
    log_s0 = torch.log(s0)
    mean_d = s1 / s0
    target = d.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_s0
    mu = mean_d - log_s0
    var = (s2 / s0 - mean_d * mean_d).clamp_min(0.0)
    return target, mu, var


_COMPILED: dict[str, Any] = {}


def _kernel(device_type: str, compile: bool) -> Any:
    """The block function: eager, or compiled per device type (CUDA: Triton; CPU: inductor's C++, which fuses the
    eager form's ~7 memory passes over a (chunk, V) fp32 block into two)."""
    if not compile or device_type not in ("cuda", "cpu"):
        return block_stats
    if device_type not in _COMPILED:
        import torch

        _COMPILED[device_type] = torch.compile(block_stats, dynamic=True)
    return _COMPILED[device_type]


def vocab_stats(logits: Any, targets: Any, *, chunk: int = 4096, compile: bool = False,
                inplace: bool = False) -> tuple[Any, Any, Any]:
    """(logp_target, mu, var), each (T,) float32, for logits (T, V) of any float dtype and targets (T,) int64.
    `inplace`: fp32 `logits` may be overwritten (the caller owns them as scratch; eager path only)."""
    import torch

    if logits.dim() != 2 or targets.dim() != 1 or logits.shape[0] != targets.shape[0]:
        raise ValueError(f"expected logits (T, V) and targets (T,), got {tuple(logits.shape)} and {tuple(targets.shape)}")
    fn = _kernel(logits.device.type, compile)
    if inplace and fn is block_stats:
        parts = [block_stats(logits[i : i + chunk], targets[i : i + chunk], True)
                 for i in range(0, logits.shape[0], chunk)]
    else:
        parts = [fn(logits[i : i + chunk], targets[i : i + chunk]) for i in range(0, logits.shape[0], chunk)]
    if not parts:
        empty = logits.new_zeros(0, dtype=torch.float32)
        return empty, empty, empty
    return tuple(torch.cat([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]
