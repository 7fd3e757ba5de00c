"""The `Encoding` of one weight tensor under one back-end (what every encoder module returns; see the package doc).

Its own module so that the encoders (rtn.py, quanto.py, ...) and the package's registry (`__init__`) import it
from below: no import circle between the registry and the modules it lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Encoding:
    """How one weight tensor (out, in) is quantized by one back-end; every tensor has the weight's shape."""

    lo_edge: Any
    hi_edge: Any
    step: Any
    range_lo: Any
    range_hi: Any
    frozen: Any
    state: dict[str, Any] = field(default_factory=dict)
    cast: Any = None
    guard: Any = 0.0
