"""Per-quantizer weight encodings: what each back-end does to one Linear weight, and where its decision edges are.

One module per back-end family (rtn.py, quanto.py, torchao.py, bnb.py), each with `encode(weight, precision) -> Encoding`,
found by `Precision.backend` in `ENCODERS`. An `Encoding` holds, per weight element (same shape as the weight):
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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quantrisk.errors import UsageError
from quantrisk.precision import Precision, parse_precision


@dataclass
class Encoding:
    """How one weight tensor (out, in) is quantized by one back-end; every tensor has the weight's shape."""

    lo_edge: Any
    hi_edge: Any
    step: Any
    range_lo: Any
    range_hi: Any
    frozen: Any
    state: dict[str, Any] = field(default_factory=dict)
    cast: Any = None
    guard: Any = 0.0


def _encoders() -> dict[str, Callable[[Any, Precision], Encoding]]:
    from quantrisk.qattack.constraints import bnb, quanto, rtn, torchao

    return {"rtn": rtn.encode, "quanto": quanto.encode, "bnb": bnb.encode, "torchao": torchao.encode}


SUPPORTED = ("rtn-w{b}g{g}", "quanto-int8", "quanto-int4", "quanto-int2", "torchao-int8wo", "bnb-int8", "bnb-nf4",
             "bnb-fp4")


def check_target(precision: str | Precision) -> Precision:
    """The parsed target precision; `UsageError` if no encoding is known for it (fp, int8-dynamic, quanto-fp8)."""
    p = parse_precision(precision)
    if (p.backend not in ("rtn", "quanto", "bnb", "torchao") or p.name == "quanto-fp8"
            or (p.backend == "torchao" and p.name != "torchao-int8wo")):
        raise UsageError(f"target precision {p.name} has no weight-interval constraint here; targets: "
                         + ", ".join(SUPPORTED))
    return p


def encode(weight: Any, precision: str | Precision) -> Encoding:
    """The `Encoding` of a 2-D fp32 `weight` (out, in) under the target `precision`."""
    p = check_target(precision)
    if weight.dim() != 2:
        raise ValueError(f"expected a 2-D weight, got shape {tuple(weight.shape)}")
    return _encoders()[p.backend](weight, p)


__all__ = ["SUPPORTED", "Encoding", "check_target", "encode"]
