"""rtn-w{b}g{g}: exactly what `quantrisk.models.quantizers.rtn.rtn_quantize` does, per element.

Groups of g consecutive input weights (row end zero-padded), s = max|w| / qmax (s = 1 for an all-zero
group), q = clamp(round(w / s), -qmax, qmax), qmax = 2^(b-1) - 1. The absmax element of each group is
frozen (it sets s); the others may move within [-absmax, absmax] and their code's rounding interval.
An all-zero group is frozen whole (any move would change its scale).
"""

from __future__ import annotations

from typing import Any

from quantrisk.qattack.constraints.encoding import Encoding
from quantrisk.qattack.constraints.grid import frozen_extremes, uniform_edges


def encode(weight: Any, precision: Any) -> Encoding:
    """The RTN `Encoding` of an fp32 weight (out, in): state = codes (int8, (out, in)), scales ((out, n_groups))."""
    import torch

    bits, group = precision.bits, precision.group_size
    out_f, in_f = weight.shape
    w = weight.detach().float()
    pad = (-in_f) % group
    wp = torch.nn.functional.pad(w, (0, pad)) if pad else w
    g = wp.reshape(-1, group)
    qmax = 2 ** (bits - 1) - 1
    absmax = g.abs().amax(dim=-1, keepdim=True)
    scale = absmax / qmax
    zero = scale == 0
    scale = torch.where(zero, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round(g / scale), -qmax, qmax)
    lo, hi = uniform_edges(q, scale)
    frozen = frozen_extremes(g, signed_abs=True) | zero.expand_as(g)

    def back(t: Any) -> Any:
        return t.reshape(out_f, -1)[:, :in_f]

    return Encoding(
        lo_edge=back(lo), hi_edge=back(hi), step=back(scale.expand_as(g)), range_lo=back(-absmax.expand_as(g)),
        range_hi=back(absmax.expand_as(g)), frozen=back(frozen),
        state={"codes": back(q).to(torch.int8), "scales": scale.reshape(out_f, -1)},
    )
