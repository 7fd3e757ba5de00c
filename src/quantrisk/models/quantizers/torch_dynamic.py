"""int8-dynamic: `torch.ao.quantization.quantize_dynamic` on every nn.Linear but the output head.

Weights are stored as int8 (per-tensor affine, torch's default dynamic qconfig); activations are
quantized per batch at run time. CPU only (torch's dynamic quantized kernels are fbgemm/qnnpack).
"""

from __future__ import annotations

import warnings
from typing import Any

from quantrisk.models.quantizers.base import Quantizer, quantizable_linears


class TorchDynamicQuantizer(Quantizer):
    library = None

    def apply(self, model: Any, precision: Any, device: str) -> Any:
        import torch
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        spec = {name: default_dynamic_qconfig for name in quantizable_linears(model)}
        with warnings.catch_warnings():  # torch >= 2.10 points eager users at torchao; the API still works
            warnings.simplefilter("ignore")
            return quantize_dynamic(model.float(), spec, dtype=torch.qint8, inplace=True)
