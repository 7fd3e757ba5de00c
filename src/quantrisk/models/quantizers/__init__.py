"""Quantization back-ends, one module each (like transformers' quantizers/auto.py), and the lookups over them.

The registry `QUANTIZERS` (`Precision.backend` -> `Quantizer` class, frozen): a precision string is parsed by
asking every back-end, and exactly one must claim it. The functions here (parse, list, availability, the LoRA-base
check) are what `quantrisk.precision` offers everyone else. Adding a back-end = its module + one line here + its
tests.
"""

from __future__ import annotations

from quantrisk.errors import PrecisionError, UsageError
from quantrisk.models.quantizers.base import Precision, Quantizer
from quantrisk.models.quantizers.bnb import BnbQuantizer
from quantrisk.models.quantizers.dtype import DtypeQuantizer
from quantrisk.models.quantizers.gguf import GgufQuantizer
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
    GgufQuantizer,
):
    QUANTIZERS.add(_quantizer.backend, _quantizer)  # a second back-end under a taken key raises ValueError
QUANTIZERS.freeze()


def get_quantizer(precision: object) -> Quantizer:
    """The back-end that realises `precision` (a Precision or a precision string)."""
    return QUANTIZERS[parse_precision(precision).backend]()  # type: ignore[arg-type]


def _backends() -> dict[str, type[Quantizer]]:
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
    from quantrisk.suggest import did_you_mean

    hint = did_you_mean(name, [p.name for p in known_precisions()])
    raise PrecisionError(f"unknown precision {text!r}{hint}; valid: {valid_names_hint()}")


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
    p = parse_precision(precision)
    if not p.trainable:
        why = _backends()[p.backend].lora_reason or "its back-end does not support training a LoRA adapter"
        ok = ", ".join(q.name for q in known_precisions() if q.trainable and "cpu" in q.devices)
        raise UsageError(f"{role} {p.name} cannot be fine-tuned: {why}; use it as a DAP2 (inference) precision, "
                         f"and fine-tune at one of: {ok}")
    return p


__all__ = ["QUANTIZERS", "Precision", "Quantizer", "availability", "backend_markers", "cuda_available", "device_type",
           "get_quantizer", "known_precisions", "parse_precision", "parse_precisions", "require_available",
           "require_lora_base", "valid_names_hint"]
