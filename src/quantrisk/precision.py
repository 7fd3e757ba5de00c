"""Precision strings: parse, print, and say what each one needs.

One string names how a model's weights are held (docs/ARCHITECTURE.md, "precision"):

    fp32 bf16 fp16                      plain torch dtypes
    int8-dynamic                        torch.ao dynamic quantization of nn.Linear (CPU)
    bnb-int8 bnb-nf4 bnb-fp4            bitsandbytes (CUDA)
    quanto-int8 quanto-int4 quanto-int2 quanto-fp8   optimum-quanto weight quantization
    rtn-w{bits}g{group}                 pure-PyTorch round-to-nearest, per-group absmax, symmetric,
                                        bits 2..8, group 16..256 (e.g. rtn-w3g128); simulated in fp32

This module imports no heavy library: availability is checked with `importlib.util.find_spec`
and, for CUDA, a lazy `torch.cuda.is_available()` only when a CUDA device is asked about.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict, dataclass, field

from quantrisk.errors import PrecisionError

RTN_PATTERN = re.compile(r"^rtn-w(\d+)g(\d+)$")
RTN_BITS = range(2, 9)
RTN_GROUPS = range(16, 257)


@dataclass(frozen=True)
class Precision:
    """A parsed precision string.

    Attributes:
        name: the canonical string (what `str()` prints).
        backend: module under `quantrisk.models.quantizers` that realises it.
        bits: bits per weight of the quantized linear layers (32, 16, 8, 4, 3, 2).
        kind: `float`, `int` or `nf`/`fp` (4-bit float formats).
        group_size: weights sharing one scale (RTN, quanto), or None.
        devices: device types it runs on (`cpu`, `cuda`).
        library: the Python distribution that does the work (None: torch itself).
        trainable: whether a LoRA adapter can be trained on a base held at this precision (DAP1).
        static: weights quantized ahead of time (vs `int8-dynamic`, which quantizes activations on the fly).
    """

    name: str
    backend: str
    bits: int
    kind: str
    devices: tuple[str, ...]
    library: str | None = None
    group_size: int | None = None
    trainable: bool = True
    static: bool = True
    description: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.name

    @property
    def is_float(self) -> bool:
        """True for fp32/bf16/fp16: nothing is quantized."""
        return self.backend == "dtype"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict of the fields."""
        d = asdict(self)
        d["devices"] = list(self.devices)
        return d


_FIXED: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp32", "dtype", 32, "float", ("cpu", "cuda"), description="float32 weights and compute"),
        Precision("bf16", "dtype", 16, "float", ("cpu", "cuda"), description="bfloat16 weights and compute"),
        Precision("fp16", "dtype", 16, "float", ("cpu", "cuda"), description="float16 weights and compute"),
        Precision(
            "int8-dynamic", "torch_dynamic", 8, "int", ("cpu",), trainable=False, static=False,
            description="torch.ao.quantization.quantize_dynamic on nn.Linear: int8 weights, activations quantized per batch",
        ),
        Precision("bnb-int8", "bnb", 8, "int", ("cuda",), library="bitsandbytes",
                  description="bitsandbytes LLM.int8() (outlier threshold 6.0)"),
        Precision("bnb-nf4", "bnb", 4, "nf", ("cuda",), library="bitsandbytes", group_size=64,
                  description="bitsandbytes 4-bit NormalFloat, blocksize 64, bf16 compute (QLoRA)"),
        Precision("bnb-fp4", "bnb", 4, "fp", ("cuda",), library="bitsandbytes", group_size=64,
                  description="bitsandbytes 4-bit float, blocksize 64, bf16 compute"),
        Precision("quanto-int8", "quanto", 8, "int", ("cpu", "cuda"), library="optimum-quanto",
                  description="optimum-quanto int8 weights (per output channel)"),
        Precision("quanto-int4", "quanto", 4, "int", ("cpu", "cuda"), library="optimum-quanto", group_size=128,
                  description="optimum-quanto int4 weights, group 128, packed two per byte"),
        Precision("quanto-int2", "quanto", 2, "int", ("cpu", "cuda"), library="optimum-quanto", group_size=128,
                  description="optimum-quanto int2 weights, group 128, packed four per byte"),
        Precision("quanto-fp8", "quanto", 8, "fp", ("cpu", "cuda"), library="optimum-quanto",
                  description="optimum-quanto float8 e4m3 weights (per output channel)"),
    )
}

RTN_EXAMPLES: tuple[str, ...] = ("rtn-w8g128", "rtn-w4g128", "rtn-w3g128", "rtn-w2g64")


def _rtn(bits: int, group: int) -> Precision:
    return Precision(
        f"rtn-w{bits}g{group}", "rtn", bits, "int", ("cpu", "cuda"), group_size=group,
        description=f"round-to-nearest {bits}-bit, per-group absmax over {group} weights, symmetric; simulated (dequantized) in the compute dtype",
    )


def parse_precision(text: str | Precision) -> Precision:
    """Parse a precision string (case- and space-insensitive). Raises `PrecisionError` listing valid ones."""
    if isinstance(text, Precision):
        return text
    if not isinstance(text, str) or not text.strip():
        raise PrecisionError(f"empty precision; valid: {valid_names_hint()}")
    name = text.strip().lower()
    if name in _FIXED:
        return _FIXED[name]
    m = RTN_PATTERN.match(name)
    if m:
        if len(m.group(1)) > 3 or len(m.group(2)) > 4:  # int() of a 5,000-digit string raises ValueError
            raise PrecisionError(f"precision {text[:40]!r}...: RTN bits must be 2..8 and group 16..256")
        bits, group = int(m.group(1)), int(m.group(2))
        if bits not in RTN_BITS or group not in RTN_GROUPS:
            raise PrecisionError(
                f"precision {text!r}: RTN bits must be 2..8 and group 16..256 (got w{bits} g{group})"
            )
        return _rtn(bits, group)
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


def known_precisions() -> list[Precision]:
    """Every fixed precision plus the RTN examples (any rtn-w{2..8}g{16..256} is valid)."""
    return [*_FIXED.values(), *(parse_precision(n) for n in RTN_EXAMPLES)]


def valid_names_hint() -> str:
    """Human list of valid precision strings, for error messages."""
    return ", ".join(_FIXED) + ", rtn-w{2..8}g{16..256} (e.g. " + ", ".join(RTN_EXAMPLES) + ")"


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
    """Whether `precision` can run on `device` on this machine: (ok, reason if not)."""
    p = parse_precision(precision)
    kind = device_type(device)
    if kind not in p.devices:
        return False, f"{p.name} runs on {'/'.join(p.devices)} only, not {kind}"
    if kind == "cuda" and not cuda_available():
        return False, "no CUDA device visible to torch"
    module = {"bitsandbytes": "bitsandbytes", "optimum-quanto": "optimum.quanto"}.get(p.library or "")
    if module:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            extra = " (pip install 'quantrisk[gpu]')" if p.library == "bitsandbytes" else ""
            return False, f"{p.library} is not installed{extra}"
    if p.name == "fp16" and kind == "cpu":
        return True, "runs, but float16 matmuls on CPU are slow"
    return True, ""


def require_available(precision: Precision | str, device: str = "cpu") -> Precision:
    """Return the parsed precision, or raise `PrecisionError` saying why it cannot run on `device` here."""
    p = parse_precision(precision)
    ok, why = availability(p, device)
    if not ok:
        here = [q.name for q in known_precisions() if availability(q, device)[0]]
        raise PrecisionError(f"precision {p.name} is not available on {device}: {why}; available here: {', '.join(here)}")
    return p
