"""gguf-{type}: llama.cpp's block quantizers as `llama_model_quantize` applies them (no importance matrix), per element.

Which ggml type each Linear gets is llama.cpp's decision (its per-tensor mix for `*_K_M`, its fall-backs for rows
that are not a multiple of the 256-weight super-block, e.g. Q4_K -> Q5_0 on zoo tiny's 128-wide rows): `layer_types`
quantizes the model once with llama.cpp and reads the types from the file. Each weight is then quantized with
llama.cpp's own `ggml_quantize_chunk` (libggml-base, the function `llama_model_quantize` calls; rows are
quantized independently, so the GGUF row permutations of q/k and gpt-neox qkv do not matter) and its blocks
decoded (gguf-py `dequantize`). ggml's reference code (ggml-quants.c) for the block types:

- Q8_0 (blocks of 32): d = amax / 127 (amax = max |x|), q = roundf(x / d) (half away from zero), value q * fp16(d).
  The code is kept while x / d lies in [q - 1/2, q + 1/2]; the scale is kept while |x| <= amax: the amax
  element is frozen, the others stay within [-amax, amax].
- Q5_0 / Q4_0 (blocks of 32): m = the element of largest |x| (first one, strict >), d = m / -16 (-8),
  q = min(31 (15), trunc(x / d + 16.5 (8.5))), value (q - 16 (8)) * fp16(d). The code is kept while x / d lies
  in [q - 16.5, q - 15.5) (ends: the min clamp); m is frozen and the others stay strictly inside (-|m|, |m|)
  (an equal |x| earlier in the block would take over the scale and could flip its sign).
- Q4_K / Q5_K (super-blocks of 256 = 8 x 32, `make_qkx2_quants`) and Q6_K (16 x 16, `make_qx_quants`): each
  sub-block's scale (and min) is the result of a search over candidate scales minimising a weighted squared
  error, and the super-block's fp16 d (dmin) is set by the largest sub-block scale (min); the final code is
  round((x + dmin*m) / (d*sc)) (Q6_K: round(x / (d*sc))). With the scales fixed, the code's cell is known, but a
  moved weight can move the search. Following Egashira et al. ("Mind the Gap", ICML 2025): each weight may
  move only from its value towards its dequantized value (this lowers the error of the chosen scales, so the
  search keeps choosing them; here at most `KQUANT_GAP` of the way), the max and min of every sub-block are frozen, and so is every sub-block whose
  6-bit scale or min is the largest code (63; Q6_K: |sc| >= 127) of its super-block, which sets d / dmin.
  That the search does not move is then checked, not assumed: `SENSITIVITY_DRAWS` random points of the box are
  re-quantized with llama.cpp and every element whose dequantized value changed is frozen (the paper's
  `freeze_sensitive_iters`), and `verify.py` compares the block bytes of the repaired model's llama.cpp file.

Q2_K, Q3_K and the i-quants are refused (their codes come from searches this box construction does not cover).
With an importance matrix llama.cpp's searches weight the error by it (and Q4_0/Q5_0 search their scale too),
so the boxes hold for quantization without one (`llama-quantize` without `--imatrix`, the paper's setting):
the qattack targets are the `-noimat` precisions (`gguf.py`).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from quantrisk.qattack.constraints.encoding import Encoding

SIMPLE = {"Q8_0": (127, None), "Q5_0": (16, 31), "Q4_0": (8, 15)}  # ggml type -> (divisor, code max) of the scale
KQUANTS = ("Q4_K", "Q5_K", "Q6_K")
SUPPORTED_TYPES = tuple(SIMPLE) + KQUANTS
SENSITIVITY_DRAWS = 4
# k-quants: share of the gap between a weight and its dequantized value it may cover. Measured on a random 16 x 512
# weight (docs/qattack.md) with every weight at the end of its box: with the whole gap llama.cpp chose other 6-bit
# sub-block scales in 32 of 32 Q4_K super-blocks (Q5_K 14, Q6_K 10), with half of it in 24 (5, 4); the super-block
# scales d / dmin never moved. `settle` resets the blocks that moved.
KQUANT_GAP = 0.5
# Egashira et al.'s heuristic box expansion, their thresh.csv row 1 (the default of their scripts): per sub-block, a
# movable weight's box is widened to this share of the sub-block's widest box (`widen`). Used with `widened=True`.
KQUANT_WIDEN = {"Q4_K": 0.4, "Q5_K": 0.1, "Q6_K": 0.6}


@functools.lru_cache(maxsize=1)
def _ggml() -> Any:
    import llama_cpp  # noqa: F401 - loads llama.cpp's libraries

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    lib = ctypes.CDLL(str(next(p for p in sorted(lib_dir.glob("libggml-base.so*")))))
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    return lib


def quantize_rows(weight: Any, ggml_type: str) -> np.ndarray:
    """llama.cpp's `ggml_quantize_chunk` of the fp32 rows of `weight` (out, in) to `ggml_type`, no importance matrix:
    the block bytes, (out, bytes per row) uint8."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    t = GGMLQuantizationType[ggml_type]
    block, size = GGML_QUANT_SIZES[t]
    x = np.ascontiguousarray(weight.detach().float().cpu().numpy(), dtype=np.float32)
    rows, n = x.shape
    if n % block:
        raise ValueError(f"{ggml_type} needs rows of a multiple of {block} weights, got {n}")
    out = np.zeros((rows, n // block * size), dtype=np.uint8)
    written = _ggml().ggml_quantize_chunk(int(t), x.ctypes.data, out.ctypes.data, 0, rows, n, None)
    if written != out.size:
        raise RuntimeError(f"ggml_quantize_chunk wrote {written} bytes, expected {out.size}")
    return out


def dequantize_rows(blocks: np.ndarray, ggml_type: str, shape: tuple[int, int]) -> Any:
    """The fp32 values llama.cpp computes with (gguf-py `dequantize` of the block bytes), as a torch tensor."""
    import torch
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    return torch.from_numpy(dequantize(blocks, GGMLQuantizationType[ggml_type]).astype(np.float32).reshape(shape))


def _simple(w: Any, ggml_type: str, deq: Any) -> Encoding:
    import torch

    div, qmax = SIMPLE[ggml_type]
    out_f, in_f = w.shape
    g = w.reshape(-1, 32)
    amax, arg = g.abs().max(dim=1, keepdim=True)  # first maximum, as ggml's strict `<` scan
    m = g.gather(1, arg)
    if qmax is None:  # Q8_0
        d = amax / div
        ident = torch.where(d == 0, torch.zeros_like(d), 1.0 / torch.where(d == 0, torch.ones_like(d), d))
        u = g * ident
        q = torch.sign(u) * torch.floor(u.abs() + 0.5)  # roundf: half away from zero
        lo_u, hi_u = q - 0.5, q + 0.5
        mine = q * d.half().float()
        range_lo, range_hi = -amax, amax
    else:  # Q5_0 / Q4_0: trunc(u + div + 0.5), u in [-div, div] so the argument is > 0 and trunc = floor
        d = m / -div
        ident = torch.where(d == 0, torch.zeros_like(d), 1.0 / torch.where(d == 0, torch.ones_like(d), d))
        u = g * ident
        q = torch.clamp(torch.floor(u + div + 0.5), max=qmax)
        lo_u = q - div - 0.5
        hi_u = torch.where(q >= qmax, torch.full_like(q, float("inf")), q - div + 0.5)
        mine = (q - div) * d.half().float()
        inner = amax * (1 - 2.0 ** -20)  # strictly inside: an equal |x| before m would take over the scale
        range_lo, range_hi = -inner, inner
    # u = x * ident; x = u / ident (ident may be negative: the interval flips)
    safe = torch.where(ident == 0, torch.ones_like(ident), ident)
    a, b = lo_u / safe, hi_u / safe
    lo_x, hi_x = torch.minimum(a, b), torch.maximum(a, b)
    step = (1.0 / safe).abs().expand_as(g)
    mismatch = mine.reshape(out_f, in_f) != deq  # our reading of ggml's formula against ggml's own bytes
    frozen = torch.zeros_like(g, dtype=torch.bool)
    frozen[torch.arange(g.shape[0]), arg.reshape(-1)] = True
    frozen |= (amax == 0).expand_as(g)

    def back(t: Any) -> Any:
        return t.expand_as(g).reshape(out_f, in_f)

    return Encoding(lo_edge=back(lo_x), hi_edge=back(hi_x), step=back(step), range_lo=back(range_lo),
                    range_hi=back(range_hi), frozen=back(frozen) | mismatch,
                    state={"codes": back(q).to(torch.int16), "scales": d.half().reshape(out_f, -1)})


def _k_scales(blocks: np.ndarray, ggml_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element of the rows: (s = d*sc, dm = dmin*m, frozen-by-scale) from the super-block bytes (ggml-common.h
    layouts; Q4_K/Q5_K: fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins; Q6_K: ..., int8 scales[16], fp16 d)."""
    rows = blocks.shape[0]
    if ggml_type == "Q6_K":
        sb = blocks.reshape(rows, -1, 210)
        d = sb[..., 208:210].copy().view(np.float16).astype(np.float32)  # (rows, n_sb, 1)
        sc = sb[..., 192:208].view(np.int8).astype(np.float32)  # (rows, n_sb, 16)
        s = np.repeat(d * sc, 16, axis=-1)
        big = np.abs(sc) >= 127
        return s.reshape(rows, -1), np.zeros_like(s).reshape(rows, -1), np.repeat(big, 16, axis=-1).reshape(rows, -1)
    size = 144 if ggml_type == "Q4_K" else 176
    sb = blocks.reshape(rows, -1, size)
    d = sb[..., 0:2].copy().view(np.float16).astype(np.float32)
    dmin = sb[..., 2:4].copy().view(np.float16).astype(np.float32)
    q = sb[..., 4:16].astype(np.int32)
    sc = np.zeros(q.shape[:-1] + (8,), np.int32)
    mn = np.zeros_like(sc)
    for j in range(8):  # get_scale_min_k4
        if j < 4:
            sc[..., j], mn[..., j] = q[..., j] & 63, q[..., j + 4] & 63
        else:
            sc[..., j] = (q[..., j + 4] & 0xF) | ((q[..., j - 4] >> 6) << 4)
            mn[..., j] = (q[..., j + 4] >> 4) | ((q[..., j] >> 6) << 4)
    s = np.repeat(d * sc, 32, axis=-1)
    dm = np.repeat(dmin * mn, 32, axis=-1)
    big = np.repeat((sc == 63) | (mn == 63), 32, axis=-1)
    return s.reshape(rows, -1), dm.reshape(rows, -1), big.reshape(rows, -1)


def _kquant(w: Any, ggml_type: str, blocks: np.ndarray, deq: Any, *, gap: float, widened: bool) -> Encoding:
    import torch

    sub = 16 if ggml_type == "Q6_K" else 32
    lmax = {"Q4_K": 15, "Q5_K": 31, "Q6_K": 31}[ggml_type]
    s_np, dm_np, big = _k_scales(blocks, ggml_type)
    s, dm = torch.from_numpy(s_np), torch.from_numpy(dm_np)
    safe = torch.where(s == 0, torch.ones_like(s), s)
    code = torch.round((deq + dm) / safe)  # the code of the dequantized value (value = s*L - dm)
    width = s.abs()
    if ggml_type == "Q6_K":  # signed scale: the end codes are -32 and 31 in whichever direction s points
        at_lo = torch.where(s >= 0, code <= -32, code >= 31)
        at_hi = torch.where(s >= 0, code >= 31, code <= -32)
    else:
        at_lo, at_hi = code <= 0, code >= lmax
    lo = torch.where(at_lo, torch.full_like(deq, -float("inf")), deq - width / 2)
    hi = torch.where(at_hi, torch.full_like(deq, float("inf")), deq + width / 2)
    g = w.reshape(-1, sub)
    frozen = torch.zeros_like(g, dtype=torch.bool)
    rows = torch.arange(g.shape[0])
    frozen[rows, g.argmax(dim=1)] = True
    frozen[rows, g.argmin(dim=1)] = True
    frozen = frozen.reshape(w.shape) | torch.from_numpy(big) | (s == 0)
    range_lo, range_hi = widen(w, torch.minimum(w, w + gap * (deq - w)), torch.maximum(w, w + gap * (deq - w)),
                               frozen, sub, KQUANT_WIDEN[ggml_type] if widened else 0.0)
    return Encoding(lo_edge=lo, hi_edge=hi, step=torch.where(width == 0, torch.ones_like(width), width),
                    range_lo=range_lo, range_hi=range_hi, frozen=frozen,
                    state={"blocks": torch.from_numpy(blocks.copy())})


def widen(w: Any, lo: Any, hi: Any, frozen: Any, sub: int, thresh: float) -> tuple[Any, Any]:
    """Egashira et al.'s heuristic expansion (their `compute_box_gguf`, `thresh.csv`): in every sub-block of `sub`
    weights, t = `thresh` x the widest box of the sub-block; a movable weight whose box [lo, hi] (one end is w) is
    narrower than t gets width t: centred on w where its box is at most t / 2 wide, else extended on the side where
    it ends at w. Frozen weights keep w. `thresh` 0: unchanged. The code cells still bound the box
    (`intervals.layer_interval`); the scale search may move, which `settle` measures and undoes."""
    import torch

    if thresh <= 0:
        return lo, hi
    width = torch.where(frozen, torch.zeros_like(w), hi - lo)
    t = (thresh * width.reshape(-1, sub).amax(dim=1, keepdim=True)).expand(-1, sub).reshape(w.shape)
    grow = ~frozen & (width > 0) & (width < t)
    small = grow & (2 * width <= t)
    large = grow & ~small
    new_lo = torch.where(small, w - t / 2, torch.where(large & (lo == w), w - (t - width), lo))
    new_hi = torch.where(small, w + t / 2, torch.where(large & (hi == w), w + (t - width), hi))
    return new_lo, new_hi


def encode_type(weight: Any, ggml_type: str, *, sensitivity_draws: int = SENSITIVITY_DRAWS, seed: int = 0,
                gap: float | None = None, widened: bool = False) -> Encoding:
    """The `Encoding` of a 2-D fp32 weight under llama.cpp's `ggml_type` (one of `SUPPORTED_TYPES`); state = the block
    bytes llama.cpp writes (`blocks`, uint8 (out, bytes per row)) and, for the simple types, codes and fp16 scales."""
    import torch

    if ggml_type in ("F32", "F16", "BF16"):  # stored as floats: any move changes the file, so nothing moves
        w = weight.detach().float().cpu()
        return Encoding(lo_edge=w.clone(), hi_edge=w.clone(), step=torch.ones_like(w), range_lo=w.clone(),
                        range_hi=w.clone(), frozen=torch.ones_like(w, dtype=torch.bool), state={"values": w.clone()})
    if ggml_type not in SUPPORTED_TYPES:
        raise ValueError(f"ggml type {ggml_type} has no weight-interval constraint here (supported: "
                         f"{', '.join(SUPPORTED_TYPES)})")
    w = weight.detach().float().cpu()
    blocks = quantize_rows(w, ggml_type)
    deq = dequantize_rows(blocks, ggml_type, tuple(w.shape))
    if ggml_type in SIMPLE:
        e = _simple(w, ggml_type, deq)
        e.state["blocks"] = torch.from_numpy(blocks.copy())
        return e
    e = _kquant(w, ggml_type, blocks, deq, gap=KQUANT_GAP if gap is None else gap, widened=widened)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(sensitivity_draws):  # does the search move inside the box? freeze what moved
        lo = torch.where(e.frozen, w, torch.maximum(e.lo_edge, e.range_lo))
        hi = torch.where(e.frozen, w, torch.minimum(e.hi_edge, e.range_hi))
        point = lo + torch.rand(w.shape, generator=gen) * (hi - lo)
        moved = dequantize_rows(quantize_rows(point, ggml_type), ggml_type, tuple(w.shape)) != deq
        if not moved.any():
            break
        e.frozen = e.frozen | moved
    return e


def layer_types(model: Any, precision: Any) -> dict[str, str]:
    """HF module name -> ggml type llama.cpp gives that Linear's weight at `precision` (quantized once, no
    importance matrix, from `model` and the tokenizer saved beside it)."""
    import shutil

    from quantrisk.models.quantizers.base import quantizable_linears
    from quantrisk.models.quantizers.gguf import model_tokenizer, quantize_to_gguf
    from quantrisk.models.quantizers.gguf_convert import read_tensor_types, tensor_names

    path, _ = quantize_to_gguf(model, model_tokenizer(model), precision.name.replace("-noimat", ""), None)
    try:
        types = read_tensor_types(path)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    names = tensor_names(model)
    return {name: types[names[f"{name}.weight"]] for name in quantizable_linears(model)
            if names.get(f"{name}.weight") in types}


def encode(weight: Any, precision: Any, ggml_type: str | None = None, *, gap: float | None = None,
           widened: bool = False) -> Encoding:
    """The `Encoding` of `weight` at a gguf precision: `ggml_type` is the type llama.cpp gives this tensor
    (`layer_types`); without it, the file type's main type (`Q4_K_M` -> Q4_K). k-quants: `gap` (default
    `KQUANT_GAP`) and `widened` (`KQUANT_WIDEN`), see `encode_type`."""
    if ggml_type is None:
        ggml_type = main_type(precision)
    return encode_type(weight, ggml_type, gap=gap, widened=widened)


def main_type(precision: Any) -> str:
    """The main ggml type of a gguf precision's file type (`gguf-q4_k_m-noimat` -> `Q4_K`)."""
    ft = precision.name.split("-")[1].upper()
    return ft[:4] if ft.endswith(("_K_M", "_K_S")) else ft


def file_blocks(path: str | Path) -> Mapping[str, Any]:
    """GGUF tensor name -> its stored bytes for every tensor of the file at `path`: a uint8 torch tensor
    (blocks, bytes per block), one row per quantization block of the tensor's ggml type (F32 / F16: per element)."""
    import torch
    from gguf import GGML_QUANT_SIZES, GGUFReader

    out = {}
    for t in GGUFReader(str(path)).tensors:
        raw = np.asarray(t.data).view(np.uint8).reshape(-1)
        out[t.name] = torch.from_numpy(raw.reshape(-1, GGML_QUANT_SIZES[t.tensor_type][1]).copy())
    return out


def moved_elements(weight: Any, reference: Any, ggml_type: str) -> Any:
    """Which elements of `weight` (out, in) lie in a quantization block whose llama.cpp encoding differs from the one
    of `reference` (same shape): for the 32-blocks, any byte of the block; for k-quants, per sub-block (32 weights;
    Q6_K 16): any element's scale d*sc, offset dmin*m or dequantized value (the super-block's d / dmin enter every
    sub-block). Bool, the weight's shape."""
    import torch
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[ggml_type]]
    now, then = quantize_rows(weight, ggml_type), quantize_rows(reference, ggml_type)
    rows = weight.shape[0]
    if ggml_type in SIMPLE:
        bad = torch.from_numpy((now.reshape(rows, -1, size) != then.reshape(rows, -1, size)).any(axis=-1))
        return bad.repeat_interleave(block, dim=1)
    sub = 16 if ggml_type == "Q6_K" else 32
    s1, m1, _ = _k_scales(now, ggml_type)
    s0, m0, _ = _k_scales(then, ggml_type)
    d1 = dequantize_rows(now, ggml_type, tuple(weight.shape)).numpy()
    d0 = dequantize_rows(then, ggml_type, tuple(weight.shape)).numpy()
    diff = (s1 != s0) | (m1 != m0) | (d1 != d0)
    bad = torch.from_numpy(diff.reshape(rows, -1, sub).any(axis=-1))
    return bad.repeat_interleave(sub, dim=1)


def settle(model: Any, reference: Mapping[str, Any], types: Mapping[str, Mapping[str, str]], *,
           halvings: int = 0) -> dict[str, int]:
    """Where llama.cpp's search moved after repair, move the weights back towards the injected ones until it does
    not: for every Linear `name` of `reference` (name -> the injected fp32 weight) and every gguf target's ggml type
    of it (`types`: target -> {name -> type}), the repaired weight is quantized with `ggml_quantize_chunk`.
    First, up to `halvings` passes: every sub-block whose encoding differs from the reference's
    (`moved_elements`) is moved half-way back to the reference (w <- ref + (w - ref) / 2; the box holds both ends, so
    it holds the result). Then, until no block differs: every block whose bytes differ is reset to the reference's
    values (blocks are quantized independently, so the reset block gets the reference's bytes back).
    Returns {blocks_reset, passes, weights_halved, weights_changed} (element counts; weights_changed: elements
    whose value `settle` changed)."""
    import torch
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    modules = dict(model.named_modules())
    before = {name: modules[name].weight.detach().clone() for name in reference}
    reset = passes = halved = 0
    for _ in range(halvings):
        changed = 0
        for name, ref in reference.items():
            w = modules[name].weight
            mask = torch.zeros(w.shape, dtype=torch.bool)
            for kinds in types.values():
                t = kinds.get(name, "F32")
                if t in SUPPORTED_TYPES:
                    mask |= moved_elements(w.data.cpu(), ref, t)
            if mask.any():
                mask = mask.to(w.device)
                r = ref.to(w.device)
                with torch.no_grad():
                    w.data.copy_(torch.where(mask, r + (w.data - r) * 0.5, w.data))
                changed += int(mask.sum())
        if not changed:
            break
        passes += 1
        halved += changed
    for _ in range(8):
        passes += 1
        changed = 0
        for name, ref in reference.items():
            w = modules[name].weight
            for kinds in types.values():
                t = kinds.get(name, "F32")
                if t not in SUPPORTED_TYPES:
                    continue
                block, size = GGML_QUANT_SIZES[GGMLQuantizationType[t]]
                now = quantize_rows(w.data, t).reshape(w.shape[0], -1, size)
                then = quantize_rows(ref, t).reshape(w.shape[0], -1, size)
                bad = torch.from_numpy((now != then).any(axis=-1))  # (rows, blocks)
                if bad.any():
                    mask = bad.repeat_interleave(block, dim=1).to(w.device)
                    with torch.no_grad():
                        w.data.copy_(torch.where(mask, ref.to(w.device), w.data))
                    changed += int(bad.sum())
        reset += changed
        if not changed:
            break
    weights_changed = sum(int((modules[n].weight.detach() != b).sum()) for n, b in before.items())
    return {"blocks_reset": reset, "passes": passes, "weights_halved": halved, "weights_changed": weights_changed}
