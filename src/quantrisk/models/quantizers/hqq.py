"""hqq-w{bits}g{group}: Half-Quadratic Quantization (Badri & Shaji 2023), calibration-free, via the `hqq` library.

Every nn.Linear but the output head becomes `hqq.core.quantize.HQQLinear` with
`BaseQuantizeConfig(nbits=bits, group_size=group)`: asymmetric per-group scale and zero point, the
zero/scale optimised by HQQ's half-quadratic proximal solver on the weights alone (no data), weights
bit-packed (8/4/3/2/1-bit; 5/6-bit are stored one per byte). Bits 1..8 except 7 (hqq has no 7-bit),
group a multiple of 8 in 8..1024. CPU and CUDA (hqq's PyTorch backend).
"""

from __future__ import annotations

import re
from typing import Any

from quantrisk.errors import PrecisionError
from quantrisk.models.quantizers.base import (
    Precision,
    Quantizer,
    quantizable_linears,
    quiet_import,
    tensor_bytes,
)

HQQ_PATTERN = re.compile(r"^hqq-w(\d+)g(\d+)$")
HQQ_BITS = (1, 2, 3, 4, 5, 6, 8)


def _meta(module: Any) -> dict[str, Any] | None:
    """The `meta` dict of an `HQQLinear` (packed weight `W_q`, logical `shape`), else None."""
    meta = getattr(module, "meta", None)
    ok = isinstance(meta, dict) and getattr(module, "W_q", None) is not None and "shape" in meta
    return meta if ok else None


def _is_tensor(t: Any) -> bool:
    import torch

    return isinstance(t, torch.Tensor)


def _numel(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


class HqqQuantizer(Quantizer):
    backend = "hqq"
    marker = "h"
    library = "hqq"
    module = "hqq"
    install_hint = " (pip install hqq)"
    lora_base = False
    lora_reason = "HQQLinear is not an nn.Linear, so peft cannot wrap it here; fine-tune at fp32 and quantize for inference"
    examples = ("hqq-w8g64", "hqq-w4g64", "hqq-w3g64", "hqq-w2g16", "hqq-w1g8")
    pattern_hint = "hqq-w{1..6,8}g{8..1024, multiple of 8}"

    @classmethod
    def held_layout(cls, module: Any) -> tuple[int, int, tuple[Any, ...]] | None:
        """An `HQQLinear`: its packed `W_q` + the scale / zero tensors of its `meta` + its bias (not a Parameter)."""
        meta = _meta(module)
        if meta is None:
            return None
        bias = getattr(module, "bias", None)
        extras = [meta.get(k) for k in ("scale", "zero")] + [bias]
        held = tensor_bytes(module.W_q) + sum(tensor_bytes(t) for t in extras if _is_tensor(t))
        return held, _numel(meta["shape"]) + (bias.numel() if _is_tensor(bias) else 0), (module.W_q,)

    @classmethod
    def packed_layout(cls, module: Any) -> tuple[Any, int, int, int] | None:
        meta = _meta(module)
        if meta is None:
            return None
        bias = getattr(module, "bias", None)
        return module.W_q, _numel(meta["shape"]), int(meta["shape"][0]), bias.numel() if _is_tensor(bias) else 0

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        m = HQQ_PATTERN.match(name)
        if not m:
            return None
        bits, group = int(m.group(1)), int(m.group(2))
        if bits not in HQQ_BITS or not (8 <= group <= 1024 and group % 8 == 0):
            raise PrecisionError(f"precision {name!r}: HQQ bits must be one of {HQQ_BITS} and group a multiple of 8 "
                                 f"in 8..1024 (got w{bits} g{group})")
        return Precision(name, cls.backend, bits, "int", cls.devices, library=cls.library, group_size=group,
                         trainable=False,
                         description=f"HQQ {bits}-bit, group {group}, asymmetric, zero/scale optimised without data")

    def implementation(self, precision: Any) -> str:
        return f"hqq HQQLinear(BaseQuantizeConfig(nbits={precision.bits}, group_size={precision.group_size}))"

    def apply(self, model: Any, precision: Any, device: str, calibration: Any = None) -> Any:
        with quiet_import():
            from hqq.core.quantize import BaseQuantizeConfig, HQQBackend, HQQLinear

        HQQLinear.set_backend(HQQBackend.PYTORCH)
        config = BaseQuantizeConfig(nbits=precision.bits, group_size=precision.group_size)
        dtype = self.compute_dtype(precision, device)
        for name, linear in quantizable_linears(model).items():
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            with quiet_import():
                setattr(parent, child, HQQLinear(linear, config, compute_dtype=dtype, device=device))
        return model
