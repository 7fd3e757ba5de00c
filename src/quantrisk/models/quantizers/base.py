"""The one interface every quantization back-end implements, and the facts each one declares.

Shaped like transformers' `HfQuantizer` subclasses: a back-end module says which library (and
version) does the work, which devices and bit widths it supports, whether a LoRA adapter can be
trained on a base it quantized, whether it needs calibration data, and whether it quantizes while
`from_pretrained` loads the weights (`at_load`: a `quantization_config`) or afterwards, in memory
(`apply` on an fp32 model), the memory its layout takes, its plot marker and the packages a run records.
It also parses its own precision strings into a `Precision` (the value, defined here so that the back-ends
import nothing above them) and checks its environment with a one-line reason. `models/load.py`,
`models/memory.py`, `quantrisk.precision` and the report read these facts and never name a back-end; adding
one is a module here + one line in `quantizers/__init__.py` + its tests.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from quantrisk.environment import package_version, record_packages

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel


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


class Quantizer(ABC):
    """A quantization back-end, keyed by `Precision.backend` (= `backend`)."""

    #: registry key; every Precision this back-end parses carries it as `.backend`
    backend: ClassVar[str]
    #: distribution whose version is recorded (None: torch itself does the work)
    library: ClassVar[str | None] = None
    #: importable module that must be present (checked with find_spec, not imported)
    module: ClassVar[str | None] = None
    #: lowest library version known to work here (None: any)
    min_version: ClassVar[str | None] = None
    #: how to install the library, appended to "not installed" reasons
    install_hint: ClassVar[str] = ""
    #: devices the back-end runs on
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    #: can a LoRA adapter be trained on a base it quantized (DAP1)? If not, `lora_reason` says why
    lora_base: ClassVar[bool] = True
    lora_reason: ClassVar[str] = ""
    #: does quantizing need calibration samples (activation ranges, GPTQ Hessians)?
    needs_calibration: ClassVar[bool] = False
    #: True: quantizes while from_pretrained loads (`load_kwargs` gives a quantization_config);
    #: False: `apply` quantizes an fp32 model in memory (adapters are merged into it first)
    at_load: ClassVar[bool] = False
    #: move the model to the target device before `apply` (kernels that quantize on the GPU)
    quantize_on_device: ClassVar[bool] = False
    #: precision strings listed by `quantrisk precisions` (patterns accept more, see `pattern_hint`)
    examples: ClassVar[tuple[str, ...]] = ()
    #: human pattern of the strings it accepts beyond `examples`, e.g. "rtn-w{2..8}g{16..256}"
    pattern_hint: ClassVar[str] = ""
    #: matplotlib marker of its points in the report's plots (one shape per back-end)
    marker: ClassVar[str] = "X"
    #: distributions whose versions a run's environment records besides the core ones (`library` always is)
    packages: ClassVar[tuple[str, ...]] = ()
    #: True: the quantized weights are held dequantized in the compute dtype (fake quantization; the report's
    #: memory note says so instead of blaming embeddings and scales for a size above fp16)
    simulated: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each back-end's library (+ `packages`) joins the environment record when its module is imported."""
        super().__init_subclass__(**kwargs)
        record_packages(*([cls.library] if cls.library else []), *cls.packages)

    # ----- facts and parsing -------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def parse(cls, name: str) -> Precision | None:
        """The Precision for lower-case `name` if this back-end owns it, else None.
        Raises `PrecisionError` when the name is this back-end's but its parameters are out of range."""

    @classmethod
    def precisions(cls) -> list[Precision]:
        """The example precisions (what `quantrisk precisions` lists)."""
        out = [cls.parse(n) for n in cls.examples]
        return [p for p in out if p is not None]

    @classmethod
    def validate_environment(cls, precision: Precision, device: str) -> tuple[bool, str]:
        """(ok, one-line reason or note) for running `precision` on `device` (a device *type*, cpu/cuda) here.
        The generic checks (device list, CUDA visible) are done by `precision.availability` first."""
        if cls.module is not None:
            try:
                found = importlib.util.find_spec(cls.module) is not None
            except (ModuleNotFoundError, ValueError):
                found = False
            if not found:
                return False, f"{cls.library or cls.module} is not installed{cls.install_hint}"
        if cls.min_version and cls.library:
            have = package_version(cls.library)
            if have is not None and _version_tuple(have) < _version_tuple(cls.min_version):
                return False, f"{cls.library} {have} is too old (needs >= {cls.min_version}){cls.install_hint}"
        return True, ""

    # ----- the memory its layout takes (models/memory.py asks every back-end) -------------------------
    @classmethod
    def held_layout(cls, module: Any) -> tuple[int, int, tuple[Any, ...]] | None:
        """For a module this back-end put in place of an nn.Linear whose weights are not plain Parameters: (bytes
        held, parameters of the unquantized layer, tensors already counted); None for any other module."""
        return None

    @classmethod
    def packed_layout(cls, module: Any) -> tuple[Any, int, int, int] | None:
        """For such a module: (the tensor among `model.parameters()` standing for its weight, or None when the
        weight is no Parameter; the weight's logical element count; its rows; elements kept at fp16 beside it,
        e.g. a bias held outside the Parameters), for `memory.packed_bytes`; None for any other module."""
        return None

    @classmethod
    def scale_count(cls, numel: int, rows: int, precision: Precision) -> int:
        """fp16 scales a packed file keeps for one quantized weight of `numel` elements in `rows` output rows:
        one per group of `precision.group_size` weights, else one per row (default); a back-end with another
        granularity (one scale per tensor, per block of a file format) says so here, for `memory.packed_bytes`."""
        return -(-numel // precision.group_size) if precision.group_size else rows

    @classmethod
    def tensor_extra_bytes(cls, tensor: Any) -> int:
        """Bytes of statistics this back-end keeps on a quantized Parameter (not among its inner tensors)."""
        return 0

    @classmethod
    def logical_numel(cls, tensor: Any) -> int | None:
        """Elements of the unquantized tensor behind a packed Parameter of this back-end; None: not one."""
        return None

    # ----- what ran ----------------------------------------------------------------------------
    def calibrates(self, precision: Precision | str) -> bool:
        """Does quantizing at `precision` use calibration samples (default: `needs_calibration`)."""
        return self.needs_calibration

    def library_version(self) -> str | None:
        """Version of the library that does the work (torch's when `library` is None)."""
        return package_version(self.library or "torch")

    def implementation(self, precision: Precision) -> str:
        """The API that realises `precision` (recorded in the load record)."""
        return type(self).__name__

    # ----- doing it ----------------------------------------------------------------------------
    def compute_dtype(self, precision: Precision, device: str) -> torch.dtype:
        """dtype of activations and of the weights that stay unquantized."""
        import torch

        return torch.bfloat16 if device.startswith("cuda") else torch.float32

    def load_dtype(self, precision: Precision, device: str) -> torch.dtype:
        """dtype `from_pretrained` loads at before `apply` (fp32: quantize from full precision)."""
        import torch

        return torch.float32

    def load_kwargs(self, precision: Precision, device: str) -> dict[str, Any]:
        """Keyword arguments for `from_pretrained` when `at_load` (dtype, quantization_config, device_map)."""
        return {"dtype": self.compute_dtype(precision, device)}

    def prepare_for_training(self, model: Any) -> Any:
        """Ready an `at_load`-quantized base for LoRA training (e.g. peft's k-bit preparation)."""
        return model

    @abstractmethod
    def apply(self, model: PreTrainedModel, precision: Precision, device: str,
              calibration: Sequence[torch.Tensor] | None = None) -> PreTrainedModel:
        """Quantize `model` (in the compute dtype; on `device` if `quantize_on_device`, else on CPU) in place or
        return a new one. `calibration`: token-id tensors (1, T) when `needs_calibration`. Returns the model."""


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


@contextmanager
def quiet_import() -> Iterator[None]:
    """Silence import-time chatter of optional libraries (torchao's "Failed to load <C extension built for another
    torch>", torch's pytree deprecation notes, Python warnings) so CLI output stays one line per message."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree", "hqq", "torch.fx._symbolic_trace")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels, strict=True):
            lg.setLevel(lvl)


def tensor_bytes(t: Any) -> int:
    """Bytes a tensor holds: numel x element size; a tensor subclass wrapping inner tensors (optimum-quanto's
    QTensors) as the sum of its inner tensors."""
    import torch

    inner = getattr(t, "__tensor_flatten__", None)
    if inner is not None and type(t) not in (torch.Tensor, torch.nn.Parameter):
        names, _ = t.__tensor_flatten__()
        if names:
            return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def output_head_names(model: Any) -> list[str]:
    """Qualified names of the output projection (lm_head / embed_out): never quantized, as in bitsandbytes."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, module in model.named_modules() if head is not None and module is head]


def quantizable_linears(model: Any) -> dict[str, Any]:
    """name -> nn.Linear for every Linear layer except the output head."""
    import torch

    skip = set(output_head_names(model))
    return {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n not in skip}
