"""quanto-int8 / -int4 / -int2 / -fp8: optimum-quanto weight-only quantization.

`optimum.quanto.quantize(model, weights=qtype, exclude=<head>)` then `freeze` (weights really
stored quantized: int8, or int4/int2 packed into uint8 with per-group scales). quanto picks the
group size (128, or the largest divisor of the row length that fits) for the sub-byte types.
LoRA trains on it: quanto's `QLinear` subclasses `nn.Linear` and passes gradients to its input.
"""

from __future__ import annotations

from typing import Any

from quantrisk.models.quantizers.base import Precision, Quantizer, output_head_names

_QTYPES = {
    "quanto-int8": ("qint8", 8, "int", None, "optimum-quanto int8 weights (per output channel)"),
    "quanto-int4": ("qint4", 4, "int", 128, "optimum-quanto int4 weights, group 128, packed two per byte"),
    "quanto-int2": ("qint2", 2, "int", 128, "optimum-quanto int2 weights, group 128, packed four per byte"),
    "quanto-fp8": ("qfloat8", 8, "fp", None, "optimum-quanto float8 e4m3 weights (per output channel)"),
}


class QuantoQuantizer(Quantizer):
    backend = "quanto"
    marker = "s"
    library = "optimum-quanto"
    module = "optimum.quanto"
    examples = tuple(_QTYPES)

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        if name not in _QTYPES:
            return None
        _, bits, kind, group, desc = _QTYPES[name]
        return Precision(name, cls.backend, bits, kind, cls.devices, library=cls.library, group_size=group,
                         description=desc)

    def implementation(self, precision: Any) -> str:
        return f"optimum.quanto.quantize(weights={_QTYPES[precision.name][0]}) + freeze"

    def apply(self, model: Any, precision: Any, device: str, calibration: Any = None) -> Any:
        import optimum.quanto as quanto

        qtype = getattr(quanto, _QTYPES[precision.name][0])
        quanto.quantize(model, weights=qtype, exclude=output_head_names(model))
        quanto.freeze(model)
        return model
