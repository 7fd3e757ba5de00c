"""Will a model fit the device at a precision? An estimate before any weight is read, and a refusal that says why.

Estimate (bytes on the device, weights and the load transient; `docs/METRICS.md` "Device memory estimate"):

    P_q   = parameters of the quantizable linear layers (decoder blocks; the output head stays 16-bit)
    P_o   = every other parameter (embeddings, norms, output head)
    final = P_q · (bits + 32 / group) / 8 + P_o · 2        (one fp32 scale per group; 16-bit elsewhere)
    peak  = max(final, P · w_load)  for back-ends that quantize on the device after loading at a wider dtype
            (torchao, HQQ, GPTQ...: the whole model sits there once at its load dtype, w_load bytes/param)
    need  = peak · 1.10 + 1 GiB                             (allocator slack, CUDA context, activations of a step)

Parameter counts come from the config through a meta-device model (no memory, any architecture transformers
knows). The device's free memory is `torch.cuda.mem_get_info`; `QUANTRISK_DEVICE_MEMORY` (bytes, or with a
K/M/G/T suffix, binary) caps it on any device, CPU included: the override the tests use to fake a small card.

Multi-GPU: quantrisk places a model on one card. A model that fits no single card is refused with the
reason, also when the host has several (sharding with `device_map` across cards is not implemented: the
studies' scoring and generation assume one device), naming the card count it saw.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from quantrisk.errors import ModelLoadError

GIB = 1024**3
SLACK = 1.10
RESERVE = GIB
ENV = "QUANTRISK_DEVICE_MEMORY"
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": GIB, "T": 1024**4}


@dataclass(frozen=True)
class FitEstimate:
    """Bytes a load at `precision` needs on the device (see the module docstring for the formula)."""

    precision: str
    quantized_params: int
    other_params: int
    final_bytes: int
    peak_bytes: int

    @property
    def need_bytes(self) -> int:
        return int(self.peak_bytes * SLACK) + RESERVE


def parse_bytes(text: str) -> int:
    """'81920M', '80G', '1.5T', '123456' -> bytes (binary units). Raises ValueError on anything else."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)I?B?\s*", text.upper())
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 80G, 81920M or a byte count)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def count_params(config: Any) -> tuple[int, int]:
    """(parameters of the decoder's Linear layers except the output head, all other parameters) of `config`'s
    model, built on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    quantized = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            quantized += module.weight.numel()
    total = sum(p.numel() for p in model.parameters())  # a tied table counts once
    return quantized, total - quantized


def estimate(config: Any, precision: Any, device: str) -> FitEstimate:
    """The estimate for `config` (a transformers config) loaded at `precision` (a Precision) on `device`."""
    from quantrisk.models.quantizers import get_quantizer

    quantizer = get_quantizer(precision)
    q, other = count_params(config)
    if precision.kind == "float" and precision.backend == "dtype":
        final = (q + other) * precision.bits // 8
    else:
        group = precision.group_size or 0
        bits = precision.bits + (32 / group if group else 0)
        final = int(q * bits / 8) + other * 2
    peak = final
    if not quantizer.at_load and quantizer.quantize_on_device:
        width = quantizer.compute_dtype(precision, device).itemsize
        peak = max(final, (q + other) * width)
    return FitEstimate(precision.name, q, other, int(final), int(peak))


def device_memory(device: str) -> tuple[int | None, int]:
    """(free bytes on `device` or None when unknown, number of CUDA cards seen). `QUANTRISK_DEVICE_MEMORY` caps
    (or, on CPU, sets) the free bytes."""
    import torch

    cards = torch.cuda.device_count() if torch.cuda.is_available() else 0
    free: int | None = None
    if device.startswith("cuda") and cards:
        index = int(device.split(":", 1)[1]) if ":" in device else torch.cuda.current_device()
        free = int(torch.cuda.mem_get_info(index)[0])
    cap = os.environ.get(ENV, "").strip()
    if cap:
        try:
            limit = parse_bytes(cap)
        except ValueError as exc:
            raise ModelLoadError(f"{ENV}: {exc}") from None
        free = limit if free is None else min(free, limit)
    return free, cards


def check_fits(config: Any, precision: Any, device: str) -> FitEstimate | None:
    """Raise `ModelLoadError` (one line, with the estimate) when the load would not fit `device`; return the
    estimate otherwise (None when the device's memory is unknown, e.g. CPU without `QUANTRISK_DEVICE_MEMORY`)."""
    free, cards = device_memory(device)
    if free is None:
        return None
    est = estimate(config, precision, device)
    if est.need_bytes <= free:
        return est
    n = est.quantized_params + est.other_params
    many = (f"; {cards} GPUs are visible, but quantrisk runs a model on one card (no device_map sharding)"
            if cards > 1 else "")
    raise ModelLoadError(
        f"{precision.name} needs about {est.need_bytes / GIB:.1f} GiB on {device} ({n / 1e9:.2f}B parameters: "
        f"{est.peak_bytes / GIB:.1f} GiB at the load peak + 10% + 1 GiB) but {free / GIB:.1f} GiB are free{many}: "
        "choose a lower-bit precision or a larger card")
