"""fp32 / bf16 / fp16: plain torch dtypes (nothing is quantized)."""

from __future__ import annotations

from typing import Any

from quantrisk.models.quantizers.base import Quantizer

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class DtypeQuantizer(Quantizer):
    applies_in_memory = False

    def compute_dtype(self, precision: Any, device: str) -> Any:
        import torch

        return getattr(torch, _DTYPES[precision.name])

    def load_kwargs(self, precision: Any, device: str) -> dict[str, Any]:
        return {"dtype": self.compute_dtype(precision, device)}

    def apply(self, model: Any, precision: Any, device: str) -> Any:
        return model.to(self.compute_dtype(precision, device))
