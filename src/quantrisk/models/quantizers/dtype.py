"""fp32 / bf16 / fp16: plain torch dtypes (nothing is quantized)."""

from __future__ import annotations

from typing import Any

from quantrisk.models.quantizers.base import Precision, Quantizer

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_BITS = {"fp32": 32, "bf16": 16, "fp16": 16}


class DtypeQuantizer(Quantizer):
    backend = "dtype"
    marker = "o"
    examples = ("fp32", "bf16", "fp16")

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        if name not in _DTYPES:
            return None
        return Precision(name, cls.backend, _BITS[name], "float", cls.devices,
                         description=f"{_DTYPES[name]} weights and compute")

    @classmethod
    def validate_environment(cls, precision: Precision, device: str) -> tuple[bool, str]:
        if precision.name == "fp16" and device == "cpu":
            return True, "runs, but float16 matmuls on CPU are slow"
        return True, ""

    def implementation(self, precision: Any) -> str:
        return f"torch.{_DTYPES[precision.name]}"

    def compute_dtype(self, precision: Any, device: str) -> Any:
        import torch

        return getattr(torch, _DTYPES[precision.name])

    def load_dtype(self, precision: Any, device: str) -> Any:
        return self.compute_dtype(precision, device)

    def apply(self, model: Any, precision: Any, device: str, calibration: Any = None) -> Any:
        return model.to(self.compute_dtype(precision, device))
