"""The one small interface every quantization back-end implements.

A back-end either changes how `from_pretrained` loads the weights (`load_kwargs`: dtype,
`quantization_config`, device map) or transforms an fp32 model already in memory (`apply`), or
both. `load_model` calls `load_kwargs`, then `apply`, then moves the model to the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from quantrisk.environment import package_version

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel

    from quantrisk.precision import Precision


class Quantizer(ABC):
    """A quantization back-end, keyed by `Precision.backend`."""

    #: distribution name whose version is recorded (None: torch itself does the work)
    library: str | None = None
    #: True if `apply` must run on an fp32 model in memory (so adapters are merged first)
    applies_in_memory: bool = True

    def library_version(self) -> str | None:
        """Version of the library that does the work (torch's when `library` is None)."""
        return package_version(self.library or "torch")

    def compute_dtype(self, precision: Precision, device: str) -> torch.dtype:
        """dtype of activations and of the weights that stay unquantized."""
        import torch

        return torch.bfloat16 if device.startswith("cuda") else torch.float32

    def load_kwargs(self, precision: Precision, device: str) -> dict[str, Any]:
        """Extra keyword arguments for `AutoModelForCausalLM.from_pretrained`."""
        return {"dtype": self.compute_dtype(precision, device) if not self.applies_in_memory else _fp32()}

    @abstractmethod
    def apply(self, model: PreTrainedModel, precision: Precision, device: str) -> PreTrainedModel:
        """Quantize `model` (fp32, on CPU) in place or return a new one; returns the model to use."""


def _fp32() -> Any:
    import torch

    return torch.float32


def output_head_names(model: Any) -> list[str]:
    """Qualified names of the output projection (lm_head / embed_out): never quantized, as in bitsandbytes."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, module in model.named_modules() if head is not None and module is head]


def quantizable_linears(model: Any) -> dict[str, Any]:
    """name -> nn.Linear for every Linear layer except the output head."""
    import torch

    skip = set(output_head_names(model))
    return {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n not in skip}
