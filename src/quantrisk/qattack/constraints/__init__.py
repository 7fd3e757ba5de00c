"""Per-quantizer weight encodings: what each back-end does to one Linear weight, and where its decision edges are.

One module per back-end family (rtn.py, quanto.py, torchao.py, bnb.py, gguf.py), each with
`encode(weight, precision) -> Encoding`, found by `Precision.backend` in `ENCODERS` (gguf.py also takes the ggml type
llama.cpp gives the tensor, `gguf.layer_types`). An `Encoding` holds, per weight element (same shape as the weight):
- `lo_edge`, `hi_edge`: the values between which the element keeps its integer code (decision boundaries of
  round-to-nearest / nearest code-table entry, in weight units; +-inf at the ends of the grid),
- `step`: the width the margin is measured in (the quantization step, or the code cell's width),
- `range_lo`, `range_hi`: the values it may take without changing the block's scale (e.g. [-absmax, absmax]),
- `frozen`: the elements that set a scale (absmax, or min and max for affine grids): they must not move,
- `state`: the tensors the back-end stores (integer codes, scales, shifts), compared by `verify.py`,
- `cast`: the dtype the back-end casts fp32 weights to before quantizing (None: it quantizes fp32 as is),
- `guard`: a width (weight units, broadcastable) next to each edge inside which the back-end's own arithmetic
  may round either way (0: it is reproduced exactly); box ends keep that much further inside, and the encoder
  freezes the elements that lie in it (bnb-int8: see bnb.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from quantrisk.errors import UsageError
from quantrisk.precision import Precision, parse_precision
from quantrisk.qattack.constraints.encoding import Encoding


def _encoders() -> dict[str, Callable[[Any, Precision], Encoding]]:
    from quantrisk.qattack.constraints import bnb, gguf, quanto, rtn, torchao

    return {"rtn": rtn.encode, "quanto": quanto.encode, "bnb": bnb.encode, "torchao": torchao.encode,
            "gguf": gguf.encode}


SUPPORTED = ("rtn-w{b}g{g}", "quanto-int8", "quanto-int4", "quanto-int2", "torchao-int8wo", "bnb-int8", "bnb-nf4",
             "bnb-fp4", "gguf-{q8_0,q4_0,q4_k_m,q4_k_s,q5_k_m,q5_k_s,q6_k}-noimat[-dq]")
GGUF_TARGETS = ("q8_0", "q4_0", "q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s", "q6_k")


def check_target(precision: str | Precision) -> Precision:
    """The parsed target precision; `UsageError` if no encoding is known for it (fp, int8-dynamic, quanto-fp8)."""
    p = parse_precision(precision)
    if p.backend == "gguf":
        kind = p.name.split("-")[1]
        if kind not in GGUF_TARGETS:
            raise UsageError(f"target precision {p.name}: llama.cpp's {kind.upper()} has no weight-interval constraint "
                             "here (its codes come from searches the boxes do not cover); targets: " + ", ".join(SUPPORTED))
        if "-noimat" not in p.name:
            raise UsageError(f"target precision {p.name} quantizes with an importance matrix from calibration data "
                             "(it weights llama.cpp's scale searches, and the attacker cannot know a user's data), so "
                             f"no box is computed for it: use {p.name.replace(kind, kind + '-noimat', 1)} "
                             "(llama-quantize without --imatrix, the setting of Egashira et al. 2025)")
        return p
    if (p.backend not in ("rtn", "quanto", "bnb", "torchao") or p.name == "quanto-fp8"
            or (p.backend == "torchao" and p.name != "torchao-int8wo")):
        raise UsageError(f"target precision {p.name} has no weight-interval constraint here; targets: "
                         + ", ".join(SUPPORTED))
    return p


def encode(weight: Any, precision: str | Precision, ggml_type: str | None = None,
           gguf_box: Mapping[str, Any] | None = None) -> Encoding:
    """The `Encoding` of a 2-D fp32 `weight` (out, in) under the target `precision` (`ggml_type`: gguf only, the type
    llama.cpp gives this tensor; `gguf_box`: the k-quant box options of `gguf.encode`, `gap` and `widened`)."""
    p = check_target(precision)
    if weight.dim() != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(weight.shape)}")
    if p.backend == "gguf":
        return _encoders()["gguf"](weight, p, ggml_type, **(gguf_box or {}))
    return _encoders()[p.backend](weight, p)


def layer_types(model: Any, targets: Any) -> dict[str, dict[str, str]]:
    """target name -> {Linear name -> ggml type} for the gguf targets among `targets` (llama.cpp's choice)."""
    from quantrisk.qattack.constraints import gguf

    out = {}
    for t in targets:
        p = check_target(t)
        if p.backend == "gguf":
            out[p.name] = gguf.layer_types(model, p)
    return out


__all__ = ["SUPPORTED", "Encoding", "check_target", "encode", "layer_types"]
