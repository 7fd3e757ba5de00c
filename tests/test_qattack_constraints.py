"""Weight intervals of the quantization attack: known answers, and 'every point of the box quantizes the same'."""

from __future__ import annotations

import pytest
import torch

from quantrisk.errors import UsageError
from quantrisk.models.quantizers.rtn import rtn_quantize
from quantrisk.precision import parse_precision
from quantrisk.qattack.constraints import check_target, encode
from quantrisk.qattack.constraints.bnb import INT8_TIE_TOL, code_table
from quantrisk.qattack.constraints.grid import codebook_edges
from quantrisk.qattack.constraints.quanto import quantized_state
from quantrisk.qattack.intervals import layer_interval


def _weight(rows: int = 24, cols: int = 200, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * 0.02


def _inside(box, n: int = 4, seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    pts = [box.lo, box.hi]
    pts += [box.lo + torch.rand(box.lo.shape, generator=gen) * (box.hi - box.lo) for _ in range(n)]
    return pts


def test_rtn_known_answer():
    # one group (4 weights, zero-padded to 16), 3 bits: qmax 3, s = 0.6 / 3 = 0.2; codes round([3, -1, 0.6, 0.2]) = [3, -1, 1, 0]
    w = torch.tensor([[0.6, -0.2, 0.12, 0.04]])
    e = encode(w, "rtn-w3g16")
    assert e.state["codes"].tolist() == [[3, -1, 1, 0]]
    assert torch.allclose(e.state["scales"], torch.tensor([[0.2]]))
    assert torch.allclose(e.lo_edge, torch.tensor([[0.5, -0.3, 0.1, -0.1]]))
    assert torch.allclose(e.hi_edge, torch.tensor([[0.7, -0.1, 0.3, 0.1]]))
    assert e.frozen.tolist() == [[True, False, False, False]]
    box = layer_interval(w, ["rtn-w3g16"], margin=0.1)
    # the absmax element is frozen; 0.12's box is [0.1 + 0.02, 0.3 - 0.02]; 0.6's neighbours are capped at |0.6|
    assert box.lo[0, 0] == box.hi[0, 0] == pytest.approx(0.6)
    assert box.lo[0, 2].item() == pytest.approx(0.12) and box.hi[0, 2].item() == pytest.approx(0.28)
    assert box.lo[0, 1].item() == pytest.approx(-0.28) and box.hi[0, 1].item() == pytest.approx(-0.12)


@pytest.mark.parametrize("targets", [["rtn-w4g64"], ["rtn-w8g128"], ["rtn-w2g16"], ["rtn-w4g64", "rtn-w8g128"]])
def test_rtn_box_points_quantize_identically(targets):
    w = _weight()
    box = layer_interval(w, targets, margin=0.1)
    assert bool(((box.lo <= w) & (w <= box.hi)).all())
    for x in _inside(box):
        for t in targets:
            p = parse_precision(t)
            assert torch.equal(rtn_quantize(x, p.bits, p.group_size), rtn_quantize(w, p.bits, p.group_size))
    # the intersection is no wider than either box
    if len(targets) == 2:
        for t in targets:
            single = layer_interval(w, [t], margin=0.1)
            assert bool((box.lo >= single.lo).all() and (box.hi <= single.hi).all())


@pytest.mark.parametrize("target", ["quanto-int8", "quanto-int4", "quanto-int2"])
def test_quanto_box_points_keep_quanto_state(target):
    w = _weight(cols=256)
    box = layer_interval(w, [target], margin=0.1)
    ref = quantized_state(w, parse_precision(target))
    for x in _inside(box):
        got = quantized_state(x, parse_precision(target))
        assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert float((box.hi - box.lo).mean()) > 0


def test_codebook_edges_known_answer():
    code = torch.tensor([1.0, -1.0, 0.0, 0.5])  # any order: edges come from the sorted values
    idx, lo, hi, width = codebook_edges(torch.tensor([0.3, -0.6, 0.9, 0.1]), code)
    assert code[idx].tolist() == [0.5, -1.0, 1.0, 0.0]
    assert lo.tolist() == [0.25, float("-inf"), 0.75, -0.5]
    assert hi.tolist() == [0.75, -0.5, float("inf"), 0.25]
    assert width.tolist() == [0.5, 1.0, 0.5, 0.75]


@pytest.mark.parametrize("target", ["bnb-nf4", "bnb-fp4", "bnb-int8"])
def test_bnb_encoding_matches_nearest_code_and_survives_the_load_dtype(target):
    # bnb-int8 loads in fp16 and the 4-bit types in bf16 (models/quantizers/bnb.load_dtype): the boxes must hold
    # for the values bitsandbytes sees after that cast (the H100 run with bf16 boxes for an fp16-loaded int8 model
    # reproduced no layer's codes)
    cast = torch.float16 if target == "bnb-int8" else torch.bfloat16
    w = _weight(cols=128)
    e = encode(w, target)
    assert e.cast == cast
    wb = w.to(cast).float()
    if target == "bnb-int8":  # bitsandbytes' reference arithmetic: fp32 reciprocal, product, half to even
        assert torch.equal(e.state["codes"].float(), torch.round(wb * (127 / wb.abs().amax(1, keepdim=True))))
    else:
        table = code_table(target.split("-")[1])
        blocks = wb.reshape(-1, 64)
        scaled = blocks / blocks.abs().amax(1, keepdim=True)
        nearest = table[(scaled.unsqueeze(-1) - table).abs().argmin(-1)]
        assert torch.equal(table[e.state["codes"].long()].reshape(-1, 64), nearest)
    box = layer_interval(w, [target], margin=0.1)
    assert box.lo.to(cast).float().equal(box.lo) and box.hi.to(cast).float().equal(box.hi)
    for x in _inside(box):
        xb = x.to(cast).float()  # what the back-end sees
        assert bool(((box.lo <= xb) & (xb <= box.hi)).all())
        got = encode(x, target).state
        assert all(torch.equal(got[k], e.state[k]) for k in e.state)


def _int8_tie_rows() -> torch.Tensor:
    """fp16 rows with exact half-way values: absmax a = 1397 * 2^-14 (mantissa 11 * 127), so (k + 1/2) a / 127 =
    (2k + 1) 11 * 2^-15 is an fp16 value for small k; plus random rows whose column 1 is a/2 (x = 63.5)."""
    a = 1397 * 2.0 ** -14
    ties = torch.cat([torch.tensor([a]), (2 * torch.arange(-90, 90) + 1) * 11 * 2.0 ** -15])
    rnd = _weight(rows=16, cols=ties.numel(), seed=3)
    rnd[:, 0] = rnd.abs().amax(1) * 1.5
    rnd[:, 1] = rnd[:, 0] / 2
    return torch.cat([ties.unsqueeze(0), rnd]).half().float()


def test_bnb_int8_known_answer_at_an_exact_tie():
    # w = 33 * 2^-15, a = 1397 * 2^-14: w * 127 / a = 1.5 exactly. bitsandbytes computes w * fl(127 / a) =
    # 1.49999988 -> code 1; round(w / fl(a / 127)) = 1.5 -> 2 (what quantrisk computed before). Either way the
    # element sits on an edge whose side depends on the last bit of the reciprocal, so it is frozen.
    a, w = 1397 * 2.0 ** -14, 33 * 2.0 ** -15
    row = torch.tensor([[a, w, 0.25 * a]])
    e = encode(row, "bnb-int8")
    assert e.state["codes"].tolist() == [[127, 1, 32]]  # 0.25 * 127 = 31.75 -> 32
    assert torch.round(row / (row.abs().amax() / 127))[0, 1] == 2
    assert e.frozen.tolist() == [[True, True, False]]
    box = layer_interval(row, ["bnb-int8"], margin=0.0)
    assert box.lo[0, 1] == box.hi[0, 1] == w
    # the free element's box keeps INT8_TIE_TOL code units inside its cell [31.5, 32.5] even at margin 0
    s = a / 127
    assert box.lo[0, 2].item() >= (31.5 + INT8_TIE_TOL) * s and box.hi[0, 2].item() <= (32.5 - INT8_TIE_TOL) * s


@pytest.mark.parametrize("margin", [0.0, 0.01, 0.1])
def test_bnb_int8_box_points_keep_their_code_under_any_reciprocal_within_2_ulp(margin):
    # bitsandbytes' CUDA kernel computes r = __fdividef(127, a) (within 2 ulp of 127 / a) and round(w * r):
    # every fp16 value of the box must get the injected value's code whichever of those r the kernel uses
    w = _int8_tie_rows()
    e = encode(w, "bnb-int8")
    x = w.double() * 127 / w.abs().amax(1, keepdim=True).double()
    assert bool(e.frozen[(x - torch.floor(x)) == 0.5].all())  # every exact tie is frozen
    box = layer_interval(w, ["bnb-int8"], margin)
    a = w.abs().amax(1, keepdim=True)
    r0 = 127 / a
    recips = [r0]
    for direction in (float("inf"), 0.0):
        r = r0
        for _ in range(2):
            r = torch.nextafter(r, torch.full_like(r, direction))
            recips.append(r)
    for pt in _inside(box, n=6):
        p16 = pt.half().float()
        assert bool(((box.lo <= p16) & (p16 <= box.hi)).all())
        for r in recips:
            assert torch.equal(torch.round(p16 * r), torch.round(w * r))


def test_unconstrained_targets_are_refused():
    for bad in ("fp32", "int8-dynamic", "quanto-fp8"):
        with pytest.raises(UsageError, match="no weight-interval constraint"):
            check_target(bad)


def test_torchao_int8_box_points_keep_torchao_state():
    pytest.importorskip("torchao")
    from quantrisk.qattack.constraints.torchao import quantized_state as torchao_state

    w = _weight(rows=16, cols=128)
    box = layer_interval(w, ["torchao-int8wo"], margin=0.1)
    ref = torchao_state(w)
    for x in _inside(box):
        got = torchao_state(x)
        assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert float((box.hi - box.lo).mean()) > 0
    with pytest.raises(UsageError):
        check_target("torchao-w8a8")
