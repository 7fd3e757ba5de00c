"""bnb-int8 / bnb-nf4 / bnb-fp4: bitsandbytes through transformers' `BitsAndBytesConfig`.

The weights are quantized while `from_pretrained` loads them onto the GPU (LLM.int8() with the
default outlier threshold 6.0; 4-bit NF4/FP4 with blocksize 64 and bf16 compute). The output
head stays in bf16 (transformers' default). Needs CUDA.
"""

from __future__ import annotations

from typing import Any

from quantrisk.models.quantizers.base import Quantizer


class BnbQuantizer(Quantizer):
    library = "bitsandbytes"
    applies_in_memory = False

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
        return {"quantization_config": config, "dtype": torch.bfloat16, "device_map": {"": device}}

    def apply(self, model: Any, precision: Any, device: str) -> Any:
        return model  # done at load time
