"""quanto-int8 / -int4 / -int2 / -fp8: optimum-quanto weight-only quantization.

`optimum.quanto.quantize(model, weights=qtype, exclude=<head>)` then `freeze` (weights really
stored quantized: int8, or int4/int2 packed into uint8 with per-group scales). quanto picks the
group size (128, or the largest divisor of the row length that fits) for the sub-byte types.
"""

from __future__ import annotations

from typing import Any

from quantrisk.models.quantizers.base import Quantizer, output_head_names

_QTYPES = {"quanto-int8": "qint8", "quanto-int4": "qint4", "quanto-int2": "qint2", "quanto-fp8": "qfloat8"}


class QuantoQuantizer(Quantizer):
    library = "optimum-quanto"

    def apply(self, model: Any, precision: Any, device: str) -> Any:
        import optimum.quanto as quanto

        qtype = getattr(quanto, _QTYPES[precision.name])
        quanto.quantize(model, weights=qtype, exclude=output_head_names(model))
        quanto.freeze(model)
        return model
