"""Per-weight intervals: the fp32 values each weight may take so that every target quantizes it unchanged.

For one target and one element with encoding (lo_edge, hi_edge, step, range, frozen, guard) and margin m (a
fraction of `step`, Egashira et al. use 0.1 for int8 and 0.01 of the cell for NF4/FP4):
    lo = max(lo_edge + m * step + guard, range_lo),  hi = min(hi_edge - m * step - guard, range_hi),
    lo = min(lo, w), hi = max(hi, w)         (the injected value itself is always allowed),
    lo = hi = w where frozen                 (the scale-setting elements do not move).
Several targets: the intersection (max of the lo, min of the hi); it holds w, so it is never empty.
Targets that cast the weights (bnb: bf16) are encoded on the cast values, and the interval's ends are rounded
inward onto that dtype's grid, so a weight inside it casts to a value inside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quantrisk.qattack.constraints import check_target, encode


@dataclass
class LayerInterval:
    """Box of one Linear weight: lo <= w <= hi elementwise (fp32, the weight's shape)."""

    lo: Any
    hi: Any
    cast: Any = None


def _round_inward(lo: Any, hi: Any, dtype: Any) -> tuple[Any, Any]:
    """Smallest `dtype` value >= lo and largest <= hi (as fp32): the box's ends on the dtype's grid."""
    import torch

    def step_toward(x: Any, target: Any) -> Any:
        # one ulp of `dtype` itself (a step taken in float64 and cast back rounded to the same fp16/fp32 value)
        return torch.nextafter(x, target.to(x.dtype))

    lo_c, hi_c = lo.to(dtype), hi.to(dtype)
    # one ulp of `dtype` inward where rounding went outward (nextafter is not defined for bf16: walk via fp32 bits)
    bad_lo = lo_c.float() < lo
    if bad_lo.any():
        lo_c = torch.where(bad_lo, _next_bf16(lo_c, up=True) if dtype == torch.bfloat16 else step_toward(lo_c, hi), lo_c)
    bad_hi = hi_c.float() > hi
    if bad_hi.any():
        hi_c = torch.where(bad_hi, _next_bf16(hi_c, up=False) if dtype == torch.bfloat16 else step_toward(hi_c, lo), hi_c)
    return lo_c.float(), hi_c.float()


def _next_bf16(x: Any, *, up: bool) -> Any:
    """The next bf16 value above (`up`) or below `x` (bf16 tensor), by stepping its 16-bit pattern."""
    import torch

    bits = x.view(torch.int16).to(torch.int32)
    positive = x.float() > 0
    zero = x.float() == 0
    # for positive values a larger pattern is a larger value; for negative values the reverse
    delta = torch.where(positive == up, torch.ones_like(bits), -torch.ones_like(bits))
    stepped = (bits + delta).to(torch.int16).view(torch.bfloat16)
    tiny = torch.full_like(x, 2.0 ** -133 if up else -(2.0 ** -133))  # smallest bf16 subnormal, signed
    return torch.where(zero, tiny, stepped)


def layer_interval(weight: Any, targets: Sequence[Any], margin: float,
                   ggml_types: Mapping[str, str] | None = None,
                   gguf_box: Mapping[str, Any] | None = None) -> LayerInterval:
    """The intersected box of one fp32 weight (out, in) under every target precision (`ggml_types`: gguf target name
    -> the ggml type llama.cpp gives this weight, `constraints.layer_types`; `gguf_box`: k-quant box options,
    `constraints.gguf.encode`)."""
    import torch

    w = weight.detach().float()
    casts = []
    lo = torch.full_like(w, -float("inf"))
    hi = torch.full_like(w, float("inf"))
    for target in targets:
        p = check_target(target)
        e = encode(w, p, (ggml_types or {}).get(p.name, "F32"), gguf_box) if p.backend == "gguf" else encode(w, p)
        ref = w if e.cast is None else w.to(e.cast).float()
        t_lo = torch.maximum(e.lo_edge + margin * e.step + e.guard, e.range_lo)
        t_hi = torch.minimum(e.hi_edge - margin * e.step - e.guard, e.range_hi)
        t_lo, t_hi = torch.minimum(t_lo, ref), torch.maximum(t_hi, ref)
        t_lo = torch.where(e.frozen, ref, t_lo)
        t_hi = torch.where(e.frozen, ref, t_hi)
        lo, hi = torch.maximum(lo, t_lo), torch.minimum(hi, t_hi)
        if e.cast is not None:
            casts.append(e.cast)
    cast = casts[0] if casts else None
    if cast is not None:
        lo, hi = _round_inward(lo, hi, cast)
    return LayerInterval(lo=lo, hi=hi, cast=cast)


def model_intervals(model: Any, targets: Sequence[Any], margin: float,
                    types: Mapping[str, Mapping[str, str]] | None = None,
                    gguf_box: Mapping[str, Any] | None = None) -> dict[str, LayerInterval]:
    """name -> box (on CPU) for every quantized Linear of `model` (every Linear but the output head; for gguf targets
    a Linear llama.cpp does not block-quantize keeps its values)."""
    from quantrisk.models.quantizers.base import quantizable_linears
    from quantrisk.qattack.constraints import layer_types

    types = layer_types(model, targets) if types is None else types
    return {name: layer_interval(m.weight.detach().float().cpu(), targets, margin,
                                 {t: kinds.get(name, "F32") for t, kinds in types.items()}, gguf_box)
            for name, m in quantizable_linears(model).items()}


def interval_stats(intervals: dict[str, LayerInterval], model: Any) -> dict[str, float]:
    """Summary of the boxes: weights constrained, share frozen (zero width), mean and median width (fp32 units),
    mean width relative to the layer's mean |w|, and the share of weights outside their box (0 for a valid model)."""
    import torch

    from quantrisk.models.quantizers.base import quantizable_linears

    widths, rel, outside, n = [], [], 0, 0
    linears = quantizable_linears(model)
    for name, box in intervals.items():
        w = linears[name].weight.detach().float().cpu()
        width = (box.hi - box.lo).reshape(-1)
        widths.append(width)
        rel.append(width / w.abs().mean().clamp_min(1e-12))
        outside += int(((w < box.lo) | (w > box.hi)).sum())
        n += w.numel()
    all_w = torch.cat(widths)
    return {"n_weights": float(n), "share_frozen": float((all_w == 0).float().mean()),
            "mean_width": float(all_w.mean()), "median_width": float(all_w.median()),
            "mean_relative_width": float(torch.cat(rel).mean()), "share_outside": outside / max(n, 1)}
