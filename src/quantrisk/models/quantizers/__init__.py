"""Quantization back-ends, one module each, found by `Precision.backend` (like transformers' quantizers/auto.py)."""

from __future__ import annotations

from quantrisk.models.quantizers.base import Quantizer
from quantrisk.models.quantizers.bnb import BnbQuantizer
from quantrisk.models.quantizers.dtype import DtypeQuantizer
from quantrisk.models.quantizers.quanto import QuantoQuantizer
from quantrisk.models.quantizers.rtn import RTNQuantizer
from quantrisk.models.quantizers.torch_dynamic import TorchDynamicQuantizer
from quantrisk.precision import Precision, parse_precision

QUANTIZERS: dict[str, type[Quantizer]] = {
    "dtype": DtypeQuantizer,
    "torch_dynamic": TorchDynamicQuantizer,
    "bnb": BnbQuantizer,
    "quanto": QuantoQuantizer,
    "rtn": RTNQuantizer,
}


def get_quantizer(precision: Precision | str) -> Quantizer:
    """The back-end that realises `precision`."""
    return QUANTIZERS[parse_precision(precision).backend]()


__all__ = ["QUANTIZERS", "Quantizer", "get_quantizer"]
