"""Decision edges of uniform grids (symmetric absmax and affine min/max) and of 16-entry code tables.

Uniform grid with per-element scale s and offset o (value = q * s - o): the element keeps code q while
(w + o) / s lies in [q - 1/2, q + 1/2], so lo_edge = (q - 1/2) s - o, hi_edge = (q + 1/2) s - o, step = s.
Code table c_0 < ... < c_15 scaled by the block absmax a: code k is chosen for w / a in
[(c_{k-1} + c_k) / 2, (c_k + c_{k+1}) / 2] (nearest entry), step = the width of that cell in weight units.
"""

from __future__ import annotations

from typing import Any


def uniform_edges(q: Any, scale: Any, offset: Any | None = None) -> tuple[Any, Any]:
    """(lo_edge, hi_edge) of code `q` on the grid value = q * scale - offset (all broadcastable, fp32)."""
    off = 0.0 if offset is None else offset
    return (q - 0.5) * scale - off, (q + 0.5) * scale - off


def frozen_extremes(w: Any, *, signed_abs: bool) -> Any:
    """Bool mask of the scale-setting element of each row of `w` (rows = groups): the first |w| maximum
    (`signed_abs`), or the first minimum and the first maximum (affine grids)."""
    import torch

    mask = torch.zeros_like(w, dtype=torch.bool)
    rows = torch.arange(w.shape[0])
    if signed_abs:
        mask[rows, w.abs().argmax(dim=1)] = True
    else:
        mask[rows, w.argmax(dim=1)] = True
        mask[rows, w.argmin(dim=1)] = True
    return mask


def codebook_edges(scaled: Any, code: Any) -> tuple[Any, Any, Any, Any]:
    """For `scaled` = w / absmax in [-1, 1] and a code table `code` (16 values, any order): (index into `code` of
    the nearest entry, lo_edge, hi_edge, cell width), edges in scaled units (+-inf beyond the outer entries)."""
    import torch

    values, order = torch.sort(code.float())
    mids = (values[1:] + values[:-1]) / 2
    pos = torch.bucketize(scaled.contiguous(), mids)  # sorted position of the nearest entry (ties go up)
    inf = torch.tensor([float("inf")])
    lo_all = torch.cat([-inf, mids])
    hi_all = torch.cat([mids, inf])
    lo, hi = lo_all[pos], hi_all[pos]
    finite_w = torch.cat([mids[:1] - values[:1], mids[1:] - mids[:-1], values[-1:] - mids[-1:]]) * 1.0
    width = torch.where(torch.isfinite(hi - lo), hi - lo, finite_w[pos] * 2)
    return order[pos], lo, hi, width
