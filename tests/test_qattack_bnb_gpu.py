"""bnb-int8 boxes against bitsandbytes' own CUDA kernel (kInt8VectorQuant). Skipped without CUDA + bitsandbytes."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from quantrisk.qattack.constraints import encode
from quantrisk.qattack.intervals import layer_interval

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bitsandbytes int8 runs on GPU)"),
    pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed"),
]


def _rows() -> torch.Tensor:
    """Random rows plus rows full of exact half-way values (absmax mantissa a multiple of 127) and w = a/2."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(512, 256, generator=gen) * 0.02
    w[:, 1] = w.abs().amax(1) / 2
    ties = []
    for m in (1397, 1651, 1778, 1905):
        r = torch.cat([torch.tensor([m * 2.0 ** -14]), (2 * torch.arange(-100, 100) + 1) * (m // 127) * 2.0 ** -15])
        ties.append(torch.nn.functional.pad(r, (0, 256 - r.numel())))
    return torch.cat([w, torch.stack(ties)]).half().float()


def _bnb_codes(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import bitsandbytes.functional as F

    cb, scb, _ = F.int8_vectorwise_quant(w.half().cuda())
    return cb.cpu(), scb.cpu()


def test_encoder_codes_are_bitsandbytes_codes_off_the_ties():
    w = _rows()
    e = encode(w, "bnb-int8")
    cb, scb = _bnb_codes(w)
    assert torch.equal(scb, w.abs().amax(1))
    assert int(((e.state["codes"] != cb) & ~e.frozen).sum()) == 0


@pytest.mark.parametrize("margin", [0.0, 0.01, 0.1])
def test_box_points_requantize_to_the_same_bitsandbytes_codes(margin):
    w = _rows()
    box = layer_interval(w, ["bnb-int8"], margin)
    ref = _bnb_codes(w)
    gen = torch.Generator().manual_seed(1)
    for pt in [box.lo, box.hi, *(box.lo + torch.rand(w.shape, generator=gen) * (box.hi - box.lo) for _ in range(4))]:
        got = _bnb_codes(pt)
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
