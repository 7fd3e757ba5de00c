"""bnb-int8 / bnb-nf4 / bnb-fp4: bitsandbytes as quantrisk loads it (weights cast to its load dtype first:
fp16 for bnb-int8, bf16 for the 4-bit types), per element.

- int8 (LLM.int8() weight, `Int8Params._quantize` -> `int8_vectorwise_quant` on the fp16 weight, threshold 0):
  per output row a = max|w| (stored as `SCB`), code q = round_half_even(w * r) in fp32 with r = 127 / a in fp32
  (bitsandbytes' reference implementation; its CUDA kernel kInt8VectorQuant computes r = __fdividef(127, a), an
  approximate division within 2 ulp, and `__float2int_rn(w * r)`). fp16 weights often sit exactly half-way
  between two codes (w = a/2 in every row where a/2 is an fp16 value; every half-way point of rows whose
  absmax mantissa is a multiple of 127), and there w * r rounds to either neighbour depending on the last bit
  of r: round(w / (a/127)), which quantrisk used before, disagreed with the reference at such ties, and
  the CUDA kernel's approximate reciprocal may differ from both. So the code is certain only more than
  `INT8_TIE_TOL` code units from a half-way point (both products are within |x| (2^-22 + 2^-24) <= 4e-5 of
  the exact w * 127 / a): elements closer than that are frozen (they keep the exact fp16 value, hence
  bitsandbytes' code, whatever its rounding), and box ends keep that far from the edges (`Encoding.guard`).
  The row's absmax element is frozen.
- nf4 / fp4 (`quantize_4bit`, blocksize 64 over the flattened weight, no double quantization as
  quantrisk configures it): per block absmax a, code k = the nearest of the 16 table entries to w / a;
  the block's absmax element is frozen, the others stay within [-a, a] and their code's cell.
The code tables are bitsandbytes' (`bitsandbytes.functional.get_4bit_type`) when it is installed, else the
same values written out below (NF4: Dettmers et al., QLoRA 2023, appendix E; FP4: bnb's e2m1 table).
The back-end sees the weights in its load dtype (`cast`): intervals are computed on those values and their ends
rounded inward in that dtype (`intervals.py`), so the saved fp32 weights cast to the same codes.
"""

from __future__ import annotations

from typing import Any

from quantrisk.qattack.constraints.encoding import Encoding
from quantrisk.qattack.constraints.grid import codebook_edges, frozen_extremes, uniform_edges

BLOCKSIZE = 64
INT8_TIE_TOL = 2.0 ** -12  # code units: bnb-int8 codes closer than this to a half-way point may round either way
NF4 = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0)
FP4 = (0.0, 0.005208333333, 0.66666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25,
       0.0, -0.005208333333, -0.66666667, -1.0, -0.33333333, -0.5, -0.16666667, -0.25)


def code_table(kind: str) -> Any:
    """The 16-entry code table of `kind` ("nf4" | "fp4") as a float32 tensor, in bitsandbytes' index order."""
    import torch

    try:
        import bitsandbytes.functional as F

        return F.get_4bit_type(kind, device="cpu").float()
    except Exception:  # noqa: BLE001 - bnb absent or without a CPU build: the same constants
        return torch.tensor(NF4 if kind == "nf4" else FP4, dtype=torch.float32)


def encode(weight: Any, precision: Any) -> Encoding:
    """The bitsandbytes `Encoding` of an fp32 weight (out, in), computed on the values bitsandbytes sees: cast to
    the dtype quantrisk loads that precision in (`load_dtype`: fp16 for bnb-int8, bf16 for the 4-bit types)."""
    import torch

    from quantrisk.models.quantizers.bnb import load_dtype

    cast = load_dtype(precision.name)
    w = weight.detach().to(cast).float()
    out_f, in_f = w.shape
    if precision.name == "bnb-int8":
        absmax = w.abs().amax(dim=1, keepdim=True)
        zero = absmax == 0
        scale = torch.where(zero, torch.ones_like(absmax), absmax / 127)
        x = w * (127.0 / torch.where(zero, torch.ones_like(absmax), absmax))  # fp32, as bitsandbytes computes it
        q = torch.round(x)  # half to even, as __float2int_rn / torch.round
        lo, hi = uniform_edges(q, scale)
        tie = (x - q).abs() >= 0.5 - INT8_TIE_TOL
        frozen = frozen_extremes(w, signed_abs=True) | zero.expand_as(w) | tie
        return Encoding(lo_edge=lo, hi_edge=hi, step=scale.expand_as(w), range_lo=(-absmax).expand_as(w),
                        range_hi=absmax.expand_as(w), frozen=frozen,
                        state={"codes": q.to(torch.int8), "scales": absmax.reshape(-1)}, cast=cast,
                        guard=INT8_TIE_TOL * scale)
    kind = precision.name.split("-")[1]
    flat = w.reshape(-1)
    pad = (-flat.numel()) % BLOCKSIZE
    blocks = torch.nn.functional.pad(flat, (0, pad)).reshape(-1, BLOCKSIZE)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    safe = torch.where(absmax == 0, torch.ones_like(absmax), absmax)
    idx, lo, hi, width = codebook_edges(blocks / safe, code_table(kind))
    frozen = frozen_extremes(blocks, signed_abs=True) | (absmax == 0).expand_as(blocks)

    def back(t: Any) -> Any:
        return t.reshape(-1)[: flat.numel()].reshape(out_f, in_f)

    return Encoding(lo_edge=back(lo * safe), hi_edge=back(hi * safe), step=back(width * safe),
                    range_lo=back((-absmax).expand_as(blocks)), range_hi=back(absmax.expand_as(blocks)),
                    frozen=back(frozen), state={"codes": back(idx).to(torch.uint8), "scales": absmax.reshape(-1)},
                    cast=cast)
