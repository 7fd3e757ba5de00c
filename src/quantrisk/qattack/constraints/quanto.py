"""quanto-int8 / -int4 / -int2: optimum-quanto's own weight quantization, per element.

The scales, shifts and codes come from the library itself: a `QLinear` built from the layer (which picks
the group size: 128 or the largest multiple of 32 dividing the row, else per row) and its optimizer.
- int8 (`AbsmaxOptimizer`, symmetric, per output row): s = max|w| / 127, q = round(w / s); the row's
  absmax element is frozen.
- int4/int2 (`MaxOptimizer`, affine, per group along the row): s = (max - min) / (2^b - 1), shift = -min,
  q = clamp(round((w + shift) / s), 0, 2^b - 1); the group's min and max elements are frozen, the others
  stay within [min, max].
"""

from __future__ import annotations

from typing import Any

from quantrisk.qattack.constraints.encoding import Encoding
from quantrisk.qattack.constraints.grid import frozen_extremes, uniform_edges

_QTYPES = {"quanto-int8": "qint8", "quanto-int4": "qint4", "quanto-int2": "qint2"}


def quantized_state(weight: Any, precision: Any) -> dict[str, Any]:
    """What quanto stores for this weight (fp32 Linear on CPU): codes (unpacked), scale and, below 8 bits, shift."""
    import optimum.quanto as quanto
    import torch
    from optimum.quanto.nn import QLinear

    qtype = getattr(quanto, _QTYPES[precision.name])
    lin = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(weight.detach().float())
    qw = QLinear.from_module(lin, weights=qtype).qweight
    data = qw._data.unpack() if hasattr(qw._data, "unpack") else qw._data
    state = {"codes": data.detach().clone(), "scales": qw._scale.detach().clone()}
    if hasattr(qw, "_shift"):
        state["shifts"] = qw._shift.detach().clone()
    return state


def encode(weight: Any, precision: Any) -> Encoding:
    """The quanto `Encoding` of an fp32 weight (out, in)."""
    import optimum.quanto as quanto
    import torch
    from optimum.quanto.nn import QLinear

    qtype = getattr(quanto, _QTYPES[precision.name])
    w = weight.detach().float()
    out_f, in_f = w.shape
    lin = torch.nn.Linear(in_f, out_f, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    module = QLinear.from_module(lin, weights=qtype)
    group = module.weight_group_size or in_f
    g = w.reshape(-1, group)
    if qtype.bits == 8:
        scale = module.optimizer(w, qtype=qtype, axis=0).reshape(-1, 1)  # (out, 1), group = row
        scale_safe = torch.where(scale == 0, torch.ones_like(scale), scale)
        q = torch.clamp(torch.round(g / scale_safe), -(2 ** 7), 2 ** 7 - 1)
        lo, hi = uniform_edges(q, scale_safe)
        absmax = g.abs().amax(dim=1, keepdim=True)
        rlo, rhi = -absmax, absmax
        frozen = frozen_extremes(g, signed_abs=True) | (scale == 0).expand_as(g)
        step = scale_safe
    else:
        scale, shift = module.optimizer(w, qtype=qtype, axis=0, group_size=module.weight_group_size)
        scale, shift = scale.reshape(-1, 1), shift.reshape(-1, 1)
        scale_safe = torch.where(scale == 0, torch.ones_like(scale), scale)
        q = torch.clamp(torch.round((g + shift) / scale_safe), 0, 2 ** qtype.bits - 1)
        lo, hi = uniform_edges(q, scale_safe, shift)
        rlo, rhi = g.amin(dim=1, keepdim=True), g.amax(dim=1, keepdim=True)
        frozen = frozen_extremes(g, signed_abs=False) | (scale == 0).expand_as(g)
        step = scale_safe

    def back(t: Any) -> Any:
        return t.expand_as(g).reshape(out_f, in_f)

    return Encoding(lo_edge=back(lo), hi_edge=back(hi), step=back(step), range_lo=back(rlo), range_hi=back(rhi),
                    frozen=back(frozen), state=quantized_state(w, precision))
