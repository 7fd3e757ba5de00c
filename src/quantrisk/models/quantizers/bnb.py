"""bnb-int8 / bnb-nf4 / bnb-fp4: bitsandbytes through transformers' `BitsAndBytesConfig`.

The weights are quantized while `from_pretrained` loads them onto the GPU: LLM.int8() with the default outlier
threshold 6.0 and fp16 compute (the dtype its kernels take, so activations are not cast from bf16 on every call);
4-bit NF4/FP4 with blocksize 64 and bf16 compute. The output head stays in the compute dtype. Needs CUDA. A LoRA
adapter trains on it (QLoRA, after peft's `prepare_model_for_kbit_training`) and is attached unmerged for inference.
"""

from __future__ import annotations

from typing import Any

from quantrisk.models.quantizers.base import Precision, Quantizer, tensor_bytes

_DESC = {
    "bnb-int8": (8, "int", None, "bitsandbytes LLM.int8() (outlier threshold 6.0), fp16 compute"),
    "bnb-nf4": (4, "nf", 64, "bitsandbytes 4-bit NormalFloat, blocksize 64, bf16 compute (QLoRA)"),
    "bnb-fp4": (4, "fp", 64, "bitsandbytes 4-bit float, blocksize 64, bf16 compute"),
}


class BnbQuantizer(Quantizer):
    backend = "bnb"
    marker = "v"
    library = "bitsandbytes"
    module = "bitsandbytes"
    install_hint = " (pip install 'quantrisk[gpu]')"
    devices = ("cuda",)
    at_load = True
    examples = tuple(_DESC)

    @classmethod
    def tensor_extra_bytes(cls, tensor: Any) -> int:
        """A 4-bit weight's `quant_state.absmax`, an 8-bit weight's `SCB` (per-row scales)."""
        extra = 0
        state = getattr(tensor, "quant_state", None)
        if state is not None and getattr(state, "absmax", None) is not None:
            extra += tensor_bytes(state.absmax)
        scb = getattr(tensor, "SCB", None)
        if scb is not None:
            extra += tensor_bytes(scb)
        return extra

    @classmethod
    def logical_numel(cls, tensor: Any) -> int | None:
        """A 4-bit weight holds packed data; its real shape is in `quant_state`."""
        state = getattr(tensor, "quant_state", None)
        if state is None or getattr(state, "shape", None) is None:
            return None
        n = 1
        for d in state.shape:
            n *= int(d)
        return n

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        if name not in _DESC:
            return None
        bits, kind, group, desc = _DESC[name]
        return Precision(name, cls.backend, bits, kind, cls.devices, library=cls.library, group_size=group,
                         description=desc)

    def implementation(self, precision: Any) -> str:
        return "transformers BitsAndBytesConfig"

    def load_kwargs(self, precision: Any, device: str) -> dict[str, Any]:
        import torch
        from transformers import BitsAndBytesConfig

        if precision.name == "bnb-int8":
            config = BitsAndBytesConfig(load_in_8bit=True)
        else:
            config = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=precision.name.split("-")[1],
                bnb_4bit_compute_dtype=torch.bfloat16,
                bnb_4bit_use_double_quant=False,
            )
        return {"quantization_config": config, "dtype": load_dtype(precision.name), "device_map": {"": device}}

    def prepare_for_training(self, model: Any) -> Any:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)

    def apply(self, model: Any, precision: Any, device: str, calibration: Any = None) -> Any:
        return model  # done at load time


def load_dtype(name: str) -> Any:
    """The dtype a bitsandbytes precision loads (and so casts its weights to before quantizing): LLM.int8()'s
    kernels compute in fp16 — with bf16 activations bitsandbytes casts them on every matmul (and warned each time:
    169,134 warnings in one GPU run) — so bnb-int8 loads in fp16; the 4-bit types load in bf16."""
    import torch

    return torch.float16 if name == "bnb-int8" else torch.bfloat16
