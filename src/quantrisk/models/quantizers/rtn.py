"""rtn-w{bits}g{group}: pure-PyTorch round-to-nearest weight quantization (simulated).

Written by hand because no library offers "any bit width, any group, any device" RTN as a
reference point. For each nn.Linear but the output head, the weight W (out, in) is split into
groups of `group` consecutive input weights (zero-padded at the row end); per group
    s = max|w| / qmax,   qmax = 2**(bits-1) - 1,   q = clamp(round(w / s), -qmax, qmax),   w' = q * s
(symmetric, so 2 bits gives the ternary levels {-s, 0, s}). W is replaced by W' in the compute
dtype: the arithmetic is exact, the storage is not packed (see `memory.packed_bytes` for the packed size).
"""

from __future__ import annotations

import re
from typing import Any

from quantrisk.errors import PrecisionError
from quantrisk.models.quantizers.base import Precision, Quantizer, quantizable_linears

RTN_PATTERN = re.compile(r"^rtn-w(\d+)g(\d+)$")
RTN_BITS = range(2, 9)
RTN_GROUPS = range(16, 257)


def rtn_quantize(weight: Any, bits: int, group: int) -> Any:
    """Fake-quantize a 2-D weight tensor (out, in) with per-group absmax RTN; returns the same shape/dtype."""
    import torch

    if weight.dim() != 2:
        raise ValueError(f"rtn_quantize expects a 2-D weight, got shape {tuple(weight.shape)}")
    out_f, in_f = weight.shape
    w = weight.detach().float()
    pad = (-in_f) % group
    if pad:
        w = torch.nn.functional.pad(w, (0, pad))
    w = w.reshape(out_f, -1, group)
    qmax = 2 ** (bits - 1) - 1
    scale = w.abs().amax(dim=-1, keepdim=True) / qmax
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round(w / scale), -qmax, qmax)
    deq = (q * scale).reshape(out_f, -1)[:, :in_f]
    return deq.to(weight.dtype)


class RTNQuantizer(Quantizer):
    backend = "rtn"
    marker = "^"
    simulated = True
    examples = ("rtn-w8g128", "rtn-w4g128", "rtn-w3g128", "rtn-w2g64")
    pattern_hint = "rtn-w{2..8}g{16..256}"

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        m = RTN_PATTERN.match(name)
        if not m:
            return None
        if len(m.group(1)) > 3 or len(m.group(2)) > 4:  # int() of a 5,000-digit string raises ValueError
            raise PrecisionError(f"precision {name[:40]!r}...: RTN bits must be 2..8 and group 16..256")
        bits, group = int(m.group(1)), int(m.group(2))
        if bits not in RTN_BITS or group not in RTN_GROUPS:
            raise PrecisionError(f"precision {name!r}: RTN bits must be 2..8 and group 16..256 (got w{bits} g{group})")
        return Precision(
            name, cls.backend, bits, "int", cls.devices, group_size=group,
            description=f"round-to-nearest {bits}-bit, per-group absmax over {group} weights, symmetric; simulated "
                        "(dequantized) in the compute dtype",
        )

    def implementation(self, precision: Any) -> str:
        return "quantrisk rtn_quantize (simulated)"

    def apply(self, model: Any, precision: Any, device: str, calibration: Any = None) -> Any:
        import torch

        with torch.no_grad():
            for module in quantizable_linears(model).values():
                module.weight.copy_(rtn_quantize(module.weight, precision.bits, precision.group_size))
        return model
