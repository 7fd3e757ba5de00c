"""Quantization back-ends, one module each (like transformers' quantizers/auto.py).

The registry: precision strings are parsed by asking each back-end in this order; `Precision.backend`
is the key. Adding a back-end = its module + one line here + its tests.
"""

from __future__ import annotations

from quantrisk.models.quantizers.base import Quantizer
from quantrisk.models.quantizers.bnb import BnbQuantizer
from quantrisk.models.quantizers.dtype import DtypeQuantizer
from quantrisk.models.quantizers.gptq import GptqQuantizer
from quantrisk.models.quantizers.hqq import HqqQuantizer
from quantrisk.models.quantizers.quanto import QuantoQuantizer
from quantrisk.models.quantizers.rtn import RTNQuantizer
from quantrisk.models.quantizers.static import StaticQuantizer
from quantrisk.models.quantizers.torch_dynamic import TorchDynamicQuantizer
from quantrisk.models.quantizers.torchao import TorchAoQuantizer
from quantrisk.registry import Registry

QUANTIZERS: Registry[type[Quantizer]] = Registry("quantization back-end")
for _quantizer in (
    DtypeQuantizer,
    TorchDynamicQuantizer,
    BnbQuantizer,
    QuantoQuantizer,
    RTNQuantizer,
    TorchAoQuantizer,
    StaticQuantizer,
    HqqQuantizer,
    GptqQuantizer,
):
    QUANTIZERS.add(_quantizer.backend, _quantizer)  # a second back-end under a taken key raises ValueError
QUANTIZERS.freeze()


def get_quantizer(precision: object) -> Quantizer:
    """The back-end that realises `precision` (a Precision or a precision string)."""
    from quantrisk.precision import parse_precision

    return QUANTIZERS[parse_precision(precision).backend]()  # type: ignore[arg-type]


__all__ = ["QUANTIZERS", "Quantizer", "get_quantizer"]
