"""Precision strings: parse, print, and say what each one needs.

One string names how a model's weights (and, for some, activations) are held. The strings belong
to the back-ends under `quantrisk.models.quantizers` (one module each): each parses its own and
declares its facts (library, devices, bits, LoRA base, calibration); `quantrisk precisions` lists
them. This module names no back-end: it is the face of `quantrisk.models.quantizers` (the `Precision`
value lives in `quantizers/base.py`, the registry and its lookups in `quantizers/__init__.py`), so
that the back-ends import nothing above them.

This module imports no heavy library: back-end modules check their libraries with
`importlib.util.find_spec`, and CUDA is probed (`torch.cuda.is_available()`) only when a CUDA
device is asked about.
"""

from quantrisk.models.quantizers import (
    QUANTIZERS,
    availability,
    backend_markers,
    cuda_available,
    device_type,
    known_precisions,
    parse_precision,
    parse_precisions,
    require_available,
    require_lora_base,
    valid_names_hint,
)
from quantrisk.models.quantizers.base import Precision

__all__ = ["QUANTIZERS", "Precision", "availability", "backend_markers", "cuda_available", "device_type",
           "known_precisions", "parse_precision", "parse_precisions", "require_available", "require_lora_base",
           "valid_names_hint"]
