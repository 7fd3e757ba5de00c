"""int8-dynamic: int8 weights, activations quantized per batch at run time, on every nn.Linear but the head.

Runs `torch.ao.quantization.quantize_dynamic` (per-tensor affine int8 weights, torch's default
dynamic qconfig; fbgemm/qnnpack kernels, CPU only) while torch still ships it, so results stay
comparable with earlier runs; torch >= 2.10 deprecates that API in favour of torchao, so when it is
gone this falls back to torchao's `Int8DynamicActivationInt8WeightConfig` (per-token activations,
per-channel weights: the same as `torchao-w8a8`). The load record names which one ran.
"""

from __future__ import annotations

import warnings
from typing import Any

from quantrisk.models.quantizers.base import Precision, Quantizer, quantizable_linears, tensor_bytes

TORCH_AO = "torch.ao.quantization.quantize_dynamic (deprecated in torch >= 2.10)"
TORCHAO = "torchao Int8DynamicActivationInt8WeightConfig (torch.ao.quantization.quantize_dynamic is gone)"


def _torch_ao_available() -> bool:
    try:
        from torch.ao.quantization import quantize_dynamic  # noqa: F401
    except ImportError:
        return False
    return True


def _weight_and_bias(module: Any) -> tuple[Any, Any]:
    """(weight, bias) of a torch.ao dynamic quantized Linear (both behind methods), else (None, None)."""
    if getattr(module, "_packed_params", None) is None or not callable(getattr(module, "weight", None)):
        return None, None
    return module.weight(), module.bias() if callable(getattr(module, "bias", None)) else None


class TorchDynamicQuantizer(Quantizer):
    backend = "torch_dynamic"
    marker = "D"
    devices = ("cpu",)
    lora_base = False
    lora_reason = ("torch.ao dynamic quantized Linear layers hold packed int8 weights with no autograd kernel, so LoRA "
                   "cannot wrap them or pass gradients")
    examples = ("int8-dynamic",)

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        if name != "int8-dynamic":
            return None
        return Precision(name, cls.backend, 8, "int", cls.devices, trainable=False, activations="int8-dynamic",
                         description="torch.ao quantize_dynamic on nn.Linear: int8 weights, activations quantized per batch")

    @classmethod
    def held_layout(cls, module: Any) -> tuple[int, int, tuple[Any, ...]] | None:
        """A dynamic int8 Linear holds no Parameters: its packed int8 weight + bias + fp32 scale + int32 zero point."""
        w, b = _weight_and_bias(module)
        if w is None:
            return None
        return (tensor_bytes(w) + (0 if b is None else tensor_bytes(b)) + 8,
                w.numel() + (0 if b is None else b.numel()), ())

    @classmethod
    def packed_layout(cls, module: Any) -> tuple[Any, int, int, int] | None:
        w, b = _weight_and_bias(module)
        return None if w is None else (None, w.numel(), w.shape[0], 0 if b is None else b.numel())

    def implementation(self, precision: Any) -> str:
        return TORCH_AO if _torch_ao_available() else TORCHAO

    def apply(self, model: Any, precision: Any, device: str, calibration: Any = None) -> Any:
        import torch

        if not _torch_ao_available():  # pragma: no cover - torch still ships it here
            from quantrisk.models.quantizers.torchao import quantize_with

            return quantize_with(model, "Int8DynamicActivationInt8WeightConfig")
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        spec = {name: default_dynamic_qconfig for name in quantizable_linears(model)}
        with warnings.catch_warnings():  # torch >= 2.10 points eager users at torchao; the API still works
            warnings.simplefilter("ignore")
            return quantize_dynamic(model.float(), spec, dtype=torch.qint8, inplace=True)
