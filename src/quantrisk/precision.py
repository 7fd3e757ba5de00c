"""Precision strings: parse, print, and say what each one needs.

One string names how a model's weights (and, for some, activations) are held. The strings belong
to the back-ends under `quantrisk.models.quantizers` (one module each): each parses its own and
declares its facts (library, devices, bits, LoRA base, calibration); `quantrisk precisions` lists
them. This module names no back-end; it asks the registry.

This module imports no heavy library: back-end modules check their libraries with
`importlib.util.find_spec`, and CUDA is probed (`torch.cuda.is_available()`) only when a CUDA
device is asked about.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from quantrisk.errors import PrecisionError


@dataclass(frozen=True)
class Precision:
    """A parsed precision string.

    Attributes:
        name: the canonical string (what `str()` prints).
        backend: registry key of the module under `quantrisk.models.quantizers` that realises it.
        bits: bits per weight of the quantized linear layers (32, 16, 8, 4, 3, 2, 1).
        kind: `float` (plain dtype), `int`, or `nf`/`fp` (quantized float formats).
        devices: device types it runs on (`cpu`, `cuda`).
        library: the Python distribution that does the work (None: torch itself).
        group_size: weights sharing one scale, or None (per channel / per tensor).
        trainable: whether a LoRA adapter can be trained on a base held at this precision (DAP1).
        activations: how activations of the quantized layers are held: `float`, `int8-dynamic` (scales per
            batch/token at run time), `int8-static` (scales calibrated once), `fp8-dynamic`, `fp8-static`.
        calibrated: quantizing needs calibration samples (static activation scales, GPTQ).
    """

    name: str
    backend: str
    bits: int
    kind: str
    devices: tuple[str, ...]
    library: str | None = None
    group_size: int | None = None
    trainable: bool = True
    activations: str = "float"
    calibrated: bool = False
    description: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.name

    @property
    def is_float(self) -> bool:
        """True for fp32/bf16/fp16: nothing is quantized."""
        return self.kind == "float"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict of the fields."""
        d = asdict(self)
        d["devices"] = list(self.devices)
        return d


def _backends() -> dict[str, Any]:
    from quantrisk.models.quantizers import QUANTIZERS

    return QUANTIZERS


def parse_precision(text: str | Precision) -> Precision:
    """Parse a precision string (case- and space-insensitive). Raises `PrecisionError` listing valid ones."""
    if isinstance(text, Precision):
        return text
    if not isinstance(text, str) or not text.strip():
        raise PrecisionError(f"empty precision; valid: {valid_names_hint()}")
    name = text.strip().lower()
    if len(name) > 64:  # no precision string is this long; int() of a 5,000-digit width would raise ValueError
        raise PrecisionError(f"precision {text.strip()[:40]!r}...: too long ({len(name)} characters); valid: "
                             f"{valid_names_hint()}")
    claims = [p for q in _backends().values() if (p := q.parse(name)) is not None]  # exact: every back-end is asked
    if len(claims) > 1:
        raise RuntimeError(f"precision {name!r} is claimed by several back-ends: {', '.join(p.backend for p in claims)}")
    if claims:
        return claims[0]
    raise PrecisionError(f"unknown precision {text!r}; valid: {valid_names_hint()}")


def parse_precisions(text: str | list[str]) -> list[Precision]:
    """Parse a comma-separated list (or a list) of precision strings, keeping order, rejecting duplicates."""
    items = [t for t in (text.split(",") if isinstance(text, str) else text) if str(t).strip()]
    if not items:
        raise PrecisionError(f"no precision given; valid: {valid_names_hint()}")
    out = [parse_precision(t) for t in items]
    names = [p.name for p in out]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise PrecisionError(f"precision listed twice: {', '.join(dups)}")
    return out


def backend_markers() -> dict[str, str]:
    """{back-end: its plot marker} (`Quantizer.marker`), for the report's plots."""
    return {key: q.marker for key, q in _backends().items()}


def known_precisions() -> list[Precision]:
    """Every back-end's example precisions (pattern back-ends accept more, see `valid_names_hint`)."""
    return [p for q in _backends().values() for p in q.precisions()]


def valid_names_hint() -> str:
    """Human list of valid precision strings, for error messages."""
    parts = []
    for q in _backends().values():
        if q.pattern_hint:
            parts.append(f"{q.pattern_hint} (e.g. {', '.join(q.examples)})")
        else:
            parts.extend(q.examples)
    return ", ".join(parts)


def device_type(device: str) -> str:
    """`cuda:1` -> `cuda`; validates the device string."""
    kind = device.split(":", 1)[0].strip().lower()
    if kind not in ("cpu", "cuda"):
        raise PrecisionError(f"unknown device {device!r}; valid: cpu, cuda, cuda:N")
    return kind


def cuda_available() -> bool:
    """True if torch sees a CUDA device (imports torch)."""
    import torch

    return bool(torch.cuda.is_available())


def availability(precision: Precision | str, device: str = "cpu") -> tuple[bool, str]:
    """Whether `precision` can run on `device` on this machine: (ok, reason if not, or a note)."""
    p = parse_precision(precision)
    kind = device_type(device)
    if kind not in p.devices:
        return False, f"{p.name} runs on {'/'.join(p.devices)} only, not {kind}"
    if kind == "cuda" and not cuda_available():
        return False, "no CUDA device visible to torch"
    return _backends()[p.backend].validate_environment(p, kind)


def require_available(precision: Precision | str, device: str = "cpu") -> Precision:
    """Return the parsed precision, or raise `PrecisionError` saying why it cannot run on `device` here."""
    p = parse_precision(precision)
    ok, why = availability(p, device)
    if not ok:
        here = [q.name for q in known_precisions() if availability(q, device)[0]]
        raise PrecisionError(f"precision {p.name} is not available on {device}: {why}; available here: {', '.join(here)}")
    return p


def require_lora_base(precision: Precision | str, role: str = "DAP1") -> Precision:
    """The parsed precision, or `UsageError` (with the back-end's reason) if a LoRA adapter cannot be trained on a
    base held at it. The one trainability check (fine-tuning, `load_model(for_training=True)`, specs)."""
    from quantrisk.errors import UsageError

    p = parse_precision(precision)
    if not p.trainable:
        why = _backends()[p.backend].lora_reason or "its back-end does not support training a LoRA adapter"
        ok = ", ".join(q.name for q in known_precisions() if q.trainable and "cpu" in q.devices)
        raise UsageError(f"{role} {p.name} cannot be fine-tuned: {why}; use it as a DAP2 (inference) precision, "
                         f"and fine-tune at one of: {ok}")
    return p
