"""gptq-w{bits}g{group}: GPTQ (Frantar et al. 2023, arXiv:2210.17323), calibrated weight-only, via llm-compressor.

`llmcompressor.oneshot(model, recipe=GPTQModifier(...), dataset=<calibration token batches>)` on the
in-memory fp32 model: every nn.Linear but the output head gets `bits`-bit symmetric integer weights
with one scale per `group` input weights, chosen column by column to minimise the layer's output
error on the calibration activations (Hessian H = 2 X Xᵀ, dampening 1% of its mean diagonal,
block size 128), layer after layer through llm-compressor's sequential pipeline. compressed-tensors
then holds the weights fake-quantized in the compute dtype with their scales (like `rtn-*`:
`memory.packed_bytes` gives the packed size). Bits 2, 3, 4, 8; group 16..256 (a multiple of 8).

Why llm-compressor: gptqmodel 7.x needs torch >= 2.14 and ships its CUDA kernels only as an sdist
(no CPU wheel), optimum's GPTQ delegates to gptqmodel, and torchao's GPTQ (prototype) does int4 and
int8 only. llm-compressor is maintained (vLLM project), runs GPTQ on CPU, and its wheels are pure
Python; but 0.14 pins transformers <= 5.17, so it is an optional extra (`pip install
'quantrisk[gptq]'`) that cannot be installed beside transformers 5.24.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Sequence
from typing import Any

from quantrisk.errors import PrecisionError
from quantrisk.models.quantizers.base import Precision, Quantizer, output_head_names, quiet_import

GPTQ_PATTERN = re.compile(r"^gptq-w(\d{1,3})g(\d{1,5})$")
GPTQ_BITS = (2, 3, 4, 8)


class GptqQuantizer(Quantizer):
    backend = "gptq"
    marker = "*"
    packages = ("compressed-tensors",)
    library = "llmcompressor"
    module = "llmcompressor"
    install_hint = " (pip install 'quantrisk[gptq]'; llm-compressor 0.14 needs transformers <= 5.17)"
    lora_base = False
    lora_reason = "compressed-tensors wraps the Linear forward in fake quantization that quantrisk does not train over"
    needs_calibration = True
    quantize_on_device = True
    examples = ("gptq-w4g128", "gptq-w3g128", "gptq-w2g64")
    pattern_hint = "gptq-w{2,3,4,8}g{16..256}"

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        m = GPTQ_PATTERN.match(name)
        if not m:
            return None
        bits, group = int(m.group(1)), int(m.group(2))
        if bits not in GPTQ_BITS or not (16 <= group <= 256 and group % 8 == 0):
            raise PrecisionError(f"precision {name!r}: GPTQ bits must be one of {GPTQ_BITS} and group a multiple of 8 "
                                 f"in 16..256 (got w{bits} g{group})")
        return Precision(name, cls.backend, bits, "int", cls.devices, library=cls.library, group_size=group,
                         trainable=False, calibrated=True,
                         description=f"GPTQ {bits}-bit, group {group}, symmetric, calibrated on N samples (llm-compressor)")

    def implementation(self, precision: Any) -> str:
        return (f"llmcompressor.oneshot(GPTQModifier(num_bits={precision.bits}, group_size={precision.group_size}, "
                "symmetric, block 128, dampening 0.01), sequential pipeline)")

    def apply(self, model: Any, precision: Any, device: str, calibration: Sequence[Any] | None = None) -> Any:
        import torch

        if not calibration:
            raise ValueError(f"{precision.name} needs calibration samples")
        os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "ERROR")  # its loguru INFO/METRIC lines per layer
        with quiet_import():
            from llmcompressor import oneshot
            from llmcompressor.modifiers.quantization import GPTQModifier

        scheme = {"targets": ["Linear"], "weights": {"num_bits": precision.bits, "type": "int", "symmetric": True,
                                                     "strategy": "group", "group_size": precision.group_size}}
        recipe = GPTQModifier(config_groups={"group_0": scheme}, ignore=output_head_names(model), block_size=128,
                              dampening_frac=0.01)
        batches = [{"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}
                   for ids in calibration]
        loader = torch.utils.data.DataLoader(batches, batch_size=None)
        with quiet_import(), contextlib.redirect_stderr(io.StringIO()):  # its tqdm bars per layer and pass
            oneshot(model=model, recipe=recipe, dataset=loader, num_calibration_samples=len(batches),
                    pipeline="sequential")
        # The sequential pipeline onloads layers to the first accelerator whenever one exists, leaving a model
        # asked for on the CPU wrapped in compressed-tensors' offload caches (its parameters then read as a
        # different set of tensors). Undo the dispatch and put the model where it was asked for.
        from compressed_tensors.offload import remove_dispatch

        return remove_dispatch(model).to(device)
