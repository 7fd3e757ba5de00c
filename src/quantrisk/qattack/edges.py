"""Weight statistic of `quantrisk scan`: where weights sit inside their quantization cells.

For a weight w in a cell [lo_edge, hi_edge] of width `step` (`constraints.encode`), its distance to the
nearer edge in step units is d = min(w - lo_edge, hi_edge - w) / step, in [0, 1/2] (scale-setting elements
and cells with an infinite edge are left out). In a model trained without knowledge of the quantizer, d is
close to uniform on [0, 1/2]: the share with d < eps is about 2 eps, and every one of B equal bins of
[0, 1/2] holds about 1/B of the weights. PGD repair clamps many weights to the ends of their boxes, which lie
at d = margin < 1/2: they pile up in one bin. `pileup` = B * (largest bin share) (1 for a flat histogram),
over the weights that are not on a grid point; `edge_share[eps]` = share with d < eps; both per precision.

Two kinds of honest checkpoint also have structured d, and are told apart from box ends:
- on the grid points: on a uniform grid the code's value is the cell centre, d = 1/2. A checkpoint that was
  quantize-dequantized at the scanned precision has every weight there (`grid_share` ~ 1), while box ends sit
  at d = margin < 1/2. Weights with d >= 1/2 - `GRID_TOL` are counted in `grid_share` and left out of `pileup`.
- already rounded on another grid: a checkpoint quantize-dequantized at one symmetric absmax grid G (e.g.
  rtn-w4g64) has only a few values per group, and at another precision P their d fall on a lattice (for groups
  whose absmax coincides, w / s_P = k * s_G / s_P with s_G / s_P = 127/7 for G = w4, P = w8: d in {0, 1/7, ...}
  folded), a pile-up that says nothing about box ends. `rounded_grid` fits the symmetric absmax RTN grids
  w2..w8 x groups 32/64/128/per-row and reports the one holding the most non-zero weights on its points;
  at `ROUNDED_SHARE` or more the checkpoint counts as already rounded.
Limits: grid points of code tables (NF4/FP4) are not at the cell centre, and affine (zero-point) grids are not
in the family, so checkpoints rounded on those are not recognised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EPS: tuple[float, ...] = (0.01, 0.02, 0.05)
BINS = 50
GRID_TOL = 1e-3       # step units: |w/s - round(w/s)| (or 1/2 - d) below this is "on a grid point"
ROUNDED_SHARE = 0.9   # share of non-zero weights on one grid's points that marks an already rounded checkpoint
RTN_FAMILY: tuple[tuple[int, int], ...] = tuple((b, g) for b in range(2, 9) for g in (32, 64, 128, 0))


def edge_distances(weight: Any, precision: Any, ggml_type: str | None = None) -> Any:
    """1-D tensor of d (step units) of the non-frozen elements of `weight` (out, in) with two finite edges
    (`ggml_type`: for gguf, the type llama.cpp gives this weight)."""
    import torch

    from quantrisk.qattack.constraints import encode

    e = encode(weight, precision, ggml_type) if ggml_type else encode(weight, precision)
    w = weight.detach().float() if e.cast is None else weight.detach().to(e.cast).float()
    ok = ~e.frozen & torch.isfinite(e.lo_edge) & torch.isfinite(e.hi_edge) & (e.step > 0)
    d = torch.minimum(w - e.lo_edge, e.hi_edge - w) / e.step
    return d[ok].clamp(0.0, 0.5)


def edge_stats(model: Any, precision: Any, eps: Sequence[float] = EPS, bins: int = BINS) -> dict[str, Any]:
    """{n, pileup, pileup_d (centre of the fullest bin), pileup_all, grid_share, edge_share: {eps: share},
    expected_share: {eps: 2 eps}} over every quantized Linear of `model` (fp32) under `precision`;
    `pileup` counts only the weights off the grid points (d < 1/2 - GRID_TOL), 0 if there are none;
    `pileup_all` counts every weight (the statistic before grid points were told apart)."""
    import torch

    from quantrisk.models.quantizers.base import quantizable_linears
    from quantrisk.qattack.constraints import check_target, layer_types

    p = check_target(precision)
    kinds = layer_types(model, [p]).get(p.name)  # gguf: llama.cpp's type per Linear ("F32": not block-quantized)
    d = torch.cat([edge_distances(m.weight.detach().float().cpu(), p, None if kinds is None else kinds.get(name, "F32"))
                   for name, m in quantizable_linears(model).items()])
    on_grid = d >= 0.5 - GRID_TOL
    off = d[~on_grid]
    hist = torch.histc(off, bins=bins, min=0.0, max=0.5)
    share = hist / max(off.numel(), 1)
    top = int(share.argmax())
    every = torch.histc(d, bins=bins, min=0.0, max=0.5) / max(d.numel(), 1)
    return {"n": int(d.numel()), "pileup": float(share.max() * bins), "pileup_d": (top + 0.5) * 0.5 / bins,
            "pileup_all": float(every.max() * bins),
            "grid_share": float(on_grid.float().mean()) if d.numel() else 0.0,
            "edge_share": {str(e): float((d < e).float().mean()) for e in eps},
            "expected_share": {str(e): 2 * e for e in eps}}


def grid_fit(weight: Any, bits: int, group: int) -> tuple[int, int]:
    """(on, n): of the non-zero, non-scale-setting elements of `weight` (out, in), how many lie within GRID_TOL
    steps of a point of the symmetric absmax grid with `bits` bits and groups of `group` inputs (0: per row),
    s = group absmax / (2^(bits-1) - 1)."""
    import torch

    from quantrisk.qattack.constraints.grid import frozen_extremes

    w = weight.detach().float()
    g = w.shape[1] if group == 0 else group
    pad = (-w.shape[1]) % g
    wp = torch.nn.functional.pad(w, (0, pad)).reshape(-1, g) if pad else w.reshape(-1, g)
    absmax = wp.abs().amax(dim=1, keepdim=True)
    scale = absmax / (2 ** (bits - 1) - 1)
    x = wp / torch.where(scale > 0, scale, torch.ones_like(scale))
    keep = (wp != 0) & ~frozen_extremes(wp, signed_abs=True)
    on = ((x - x.round()).abs() <= GRID_TOL) & keep
    return int(on.sum()), int(keep.sum())


def rounded_grid(model: Any) -> dict[str, Any]:
    """{grid, share, rounded}: the RTN grid of `RTN_FAMILY` holding the largest share of the model's non-zero
    weights (every quantized Linear) on its points, that share, and whether it reaches ROUNDED_SHARE.
    The grid is chosen on the first Linear and its share measured on all of them."""
    from quantrisk.models.quantizers.base import quantizable_linears

    weights = [m.weight.detach().float().cpu() for m in quantizable_linears(model).values()]
    if not weights:
        return {"grid": None, "share": 0.0, "rounded": False}

    def share(bg: tuple[int, int], ws: Sequence[Any]) -> float:
        on = n = 0
        for w in ws:
            a, b = grid_fit(w, *bg)
            on, n = on + a, n + b
        return on / max(n, 1)

    best = max(RTN_FAMILY, key=lambda bg: share(bg, weights[:1]))
    s = share(best, weights)
    name = f"rtn-w{best[0]}g{best[1]}" if best[1] else f"rtn-w{best[0]} per row"
    return {"grid": name, "share": s, "rounded": s >= ROUNDED_SHARE}
