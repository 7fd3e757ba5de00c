"""rtn-w{bits}g{group}: pure-PyTorch round-to-nearest weight quantization (simulated).

Written by hand because no library offers "any bit width, any group, any device" RTN as a
reference point. For each nn.Linear but the output head, the weight W (out, in) is split into
groups of `group` consecutive input weights (zero-padded at the row end); per group
    s = max|w| / qmax,   qmax = 2**(bits-1) - 1,   q = clamp(round(w / s), -qmax, qmax),   w' = q * s
(symmetric, so 2 bits gives the ternary levels {-s, 0, s}). W is replaced by W' in the compute
dtype: the arithmetic is exact, the storage is not packed (see `memory.packed_bytes` for the packed size).
"""

from __future__ import annotations

from typing import Any

from quantrisk.models.quantizers.base import Quantizer, quantizable_linears


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
    library = None

    def apply(self, model: Any, precision: Any, device: str) -> Any:
        import torch

        with torch.no_grad():
            for module in quantizable_linears(model).values():
                module.weight.copy_(rtn_quantize(module.weight, precision.bits, precision.group_size))
        return model
