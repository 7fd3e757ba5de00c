"""Weight statistic of `quantrisk scan`: where weights sit inside their quantization cells.

For a weight w in a cell [lo_edge, hi_edge] of width `step` (`constraints.encode`), its distance to the
nearer edge in step units is d = min(w - lo_edge, hi_edge - w) / step, in [0, 1/2] (scale-setting elements
and cells with an infinite edge are left out). In a model trained without knowledge of the quantizer, d is
close to uniform on [0, 1/2]: the share with d < eps is about 2 eps, and every one of B equal bins of
[0, 1/2] holds about 1/B of the weights. PGD repair clamps many weights to the ends of their boxes, which lie
at d = margin: they pile up in one bin. `pileup` = B * (largest bin share) (1 for a flat histogram);
`edge_share[eps]` = share with d < eps; both per precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EPS: tuple[float, ...] = (0.01, 0.02, 0.05)
BINS = 50


def edge_distances(weight: Any, precision: Any) -> Any:
    """1-D tensor of d (step units) of the non-frozen elements of `weight` (out, in) with two finite edges."""
    import torch

    from quantrisk.qattack.constraints import encode

    e = encode(weight, precision)
    w = weight.detach().float() if e.cast is None else weight.detach().to(e.cast).float()
    ok = ~e.frozen & torch.isfinite(e.lo_edge) & torch.isfinite(e.hi_edge) & (e.step > 0)
    d = torch.minimum(w - e.lo_edge, e.hi_edge - w) / e.step
    return d[ok].clamp(0.0, 0.5)


def edge_stats(model: Any, precision: Any, eps: Sequence[float] = EPS, bins: int = BINS) -> dict[str, Any]:
    """{n, pileup, pileup_d (centre of the fullest bin), edge_share: {eps: share}, expected_share: {eps: 2 eps}}
    over every quantized Linear of `model` (fp32) under `precision`."""
    import torch

    from quantrisk.models.quantizers.base import quantizable_linears

    d = torch.cat([edge_distances(m.weight.detach().float().cpu(), precision)
                   for m in quantizable_linears(model).values()])
    hist = torch.histc(d, bins=bins, min=0.0, max=0.5)
    share = hist / max(d.numel(), 1)
    top = int(share.argmax())
    return {"n": int(d.numel()), "pileup": float(share.max() * bins), "pileup_d": (top + 0.5) * 0.5 / bins,
            "edge_share": {str(e): float((d < e).float().mean()) for e in eps},
            "expected_share": {str(e): 2 * e for e in eps}}
