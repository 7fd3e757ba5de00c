"""torchao-int8wo: torchao's `Int8WeightOnlyConfig`, per element.

The codes and scales come from torchao itself (`quantize_` on a one-layer model; `Int8Tensor.qdata`, `.scale`):
per output row, symmetric, s = max|w| / 127.5 (torchao maps the range onto [-128, 127]), code q = the stored
int8. The element keeps q while w / s stays within [q - 1/2, q + 1/2]; the row's absmax element is frozen and the
others stay within [-absmax, absmax]. Only the int8 weight-only precision is covered (w8a8 quantizes activations
at run time too; int4 / fp8 need CUDA).
"""

from __future__ import annotations

from typing import Any

from quantrisk.qattack.constraints.encoding import Encoding
from quantrisk.qattack.constraints.grid import frozen_extremes, uniform_edges


def quantized_state(weight: Any, precision: Any = None) -> dict[str, Any]:
    """What torchao stores for this fp32 weight (out, in): int8 codes and per-row scales."""
    import torch
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    lin = torch.nn.Sequential(torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False))
    with torch.no_grad():
        lin[0].weight.copy_(weight.detach().float().cpu())
    quantize_(lin, Int8WeightOnlyConfig())
    w = lin[0].weight
    return {"codes": w.qdata.detach().clone(), "scales": w.scale.detach().reshape(-1, 1).clone()}


def encode(weight: Any, precision: Any) -> Encoding:
    """The torchao-int8wo `Encoding` of an fp32 weight (out, in)."""
    import torch

    w = weight.detach().float()
    state = quantized_state(w)
    scale = state["scales"].float()
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = state["codes"].float()
    lo, hi = uniform_edges(q, safe)
    absmax = w.abs().amax(dim=1, keepdim=True)
    frozen = frozen_extremes(w, signed_abs=True) | (scale == 0).expand_as(w)
    return Encoding(lo_edge=lo, hi_edge=hi, step=safe.expand_as(w), range_lo=(-absmax).expand_as(w),
                    range_hi=absmax.expand_as(w), frozen=frozen, state=state)
