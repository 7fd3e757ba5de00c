"""torchao-int8wo / torchao-w8a8 / torchao-int4wo-g{32,64,128,256} / torchao-fp8: PyTorch's torchao.

`torchao.quantization.quantize_(model, config, filter_fn=<every nn.Linear but the head>)` swaps each
weight for a torchao tensor subclass holding the quantized data:

    torchao-int8wo        Int8WeightOnlyConfig: int8 weights, per output row, symmetric; float activations
    torchao-w8a8          Int8DynamicActivationInt8WeightConfig: int8 weights per row + int8 activations
                          quantized per token at run time (the maintained successor of torch.ao's
                          `quantize_dynamic`, which `int8-dynamic` still runs)
    torchao-int4wo-g{G}   Int4WeightOnlyConfig(group_size=G), tinygemm tile-packed layout (CUDA, bf16)
    torchao-fp8           Float8DynamicActivationFloat8WeightConfig: float8 e4m3 weights and per-tensor
                          dynamic float8 activations (CUDA, compute capability >= 8.9: H100, L4, RTX 40xx)
"""

from __future__ import annotations

import re
from typing import Any

from quantrisk.errors import PrecisionError
from quantrisk.models.quantizers.base import Precision, Quantizer, quantizable_linears, quiet_import

INT4_PATTERN = re.compile(r"^torchao-int4wo-g(\d+)$")
INT4_GROUPS = (32, 64, 128, 256)
_FIXED = {
    "torchao-int8wo": (8, "int", ("cpu", "cuda"), "float", "Int8WeightOnlyConfig",
                       "torchao int8 weight-only, per output row, symmetric"),
    "torchao-w8a8": (8, "int", ("cpu", "cuda"), "int8-dynamic", "Int8DynamicActivationInt8WeightConfig",
                     "torchao int8 weights per row + int8 activations quantized per token at run time"),
    "torchao-fp8": (8, "fp", ("cuda",), "fp8-dynamic", "Float8DynamicActivationFloat8WeightConfig",
                    "torchao float8 e4m3 weights + dynamic per-tensor float8 activations (compute capability >= 8.9)"),
}
MIN_FP8_CAPABILITY = (8, 9)


def quantize_with(model: Any, config_name: str, **kwargs: Any) -> Any:
    """`torchao.quantization.quantize_(model, <config_name>(**kwargs))` on every nn.Linear but the output head."""
    with quiet_import():
        import torchao.quantization as tq

    targets = set(quantizable_linears(model).values())
    tq.quantize_(model, getattr(tq, config_name)(**kwargs), filter_fn=lambda m, _fqn: m in targets)
    return model


def cuda_capability_reason(minimum: tuple[int, int], what: str) -> str:
    """'' if the current CUDA device has compute capability >= `minimum`, else a one-line reason."""
    import torch

    have = torch.cuda.get_device_capability()
    if tuple(have) < minimum:
        return f"{what} needs CUDA compute capability >= {minimum[0]}.{minimum[1]} (this GPU: {have[0]}.{have[1]})"
    return ""


class TorchAoQuantizer(Quantizer):
    backend = "torchao"
    marker = "P"
    library = "torchao"
    module = "torchao"
    min_version = "0.14"
    install_hint = " (pip install 'torchao>=0.14')"
    lora_base = False
    lora_reason = ("its weights are torchao tensor subclasses that quantrisk does not train LoRA over; fine-tune at "
                   "fp32 and quantize for inference")
    quantize_on_device = True
    examples = ("torchao-int8wo", "torchao-w8a8", "torchao-int4wo-g128", "torchao-fp8")
    pattern_hint = ""

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        if name in _FIXED:
            bits, kind, devices, acts, _, desc = _FIXED[name]
            return Precision(name, cls.backend, bits, kind, devices, library=cls.library, trainable=False,
                             activations=acts, description=desc)
        m = INT4_PATTERN.match(name)
        if not m:
            return None
        group = int(m.group(1))
        if group not in INT4_GROUPS:
            raise PrecisionError(f"precision {name!r}: torchao int4 group must be one of {INT4_GROUPS} (got {group})")
        return Precision(name, cls.backend, 4, "int", ("cuda",), library=cls.library, group_size=group,
                         trainable=False, description=f"torchao int4 weight-only, group {group}, tinygemm layout, bf16")

    @classmethod
    def validate_environment(cls, precision: Precision, device: str) -> tuple[bool, str]:
        return fp8_on_cuda_check(super().validate_environment(precision, device), precision, device)

    def implementation(self, precision: Any) -> str:
        if precision.name in _FIXED:
            return f"torchao.quantization.quantize_({_FIXED[precision.name][4]})"
        return f"torchao.quantization.quantize_(Int4WeightOnlyConfig(group_size={precision.group_size}))"

    def apply(self, model: Any, precision: Any, device: str, calibration: Any = None) -> Any:
        if precision.name in _FIXED:
            return quantize_with(model, _FIXED[precision.name][4])
        return quantize_with(model, "Int4WeightOnlyConfig", group_size=precision.group_size,
                             int4_packing_format="tile_packed_to_4d")


def fp8_on_cuda_check(base: tuple[bool, str], precision: Precision, device: str) -> tuple[bool, str]:
    """`base` (a back-end's own environment check), further refused for a float8 precision on a CUDA device
    below compute capability MIN_FP8_CAPABILITY, with the reason."""
    ok, why = base
    if ok and precision.kind == "fp" and device == "cuda":
        why = cuda_capability_reason(MIN_FP8_CAPABILITY, precision.name)
        ok = not why
    return ok, why
