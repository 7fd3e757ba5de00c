"""Weight memory a model really holds, whatever back-end quantized it.

Counted per tensor: plain tensors as numel × element size; tensor subclasses that wrap inner
tensors (optimum-quanto's QTensors) as the sum of their inner tensors; int8-dynamic Linear layers
through their packed int8 weight + bias + scale; bitsandbytes 4-bit/8-bit weights plus their
absmax / SCB statistics. Tied weights are counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WeightMemory:
    """bytes: what is held. logical_params: parameters of the unquantized model (for the fp16 baseline)."""

    bytes: int
    logical_params: int

    @property
    def fp16_bytes(self) -> int:
        return 2 * self.logical_params


def _tensor_bytes(t: Any) -> int:
    import torch

    inner = getattr(t, "__tensor_flatten__", None)
    if inner is not None and type(t) not in (torch.Tensor, torch.nn.Parameter):
        names, _ = t.__tensor_flatten__()
        if names:
            return sum(_tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def _bnb_extra(t: Any) -> int:
    extra = 0
    state = getattr(t, "quant_state", None)
    if state is not None and getattr(state, "absmax", None) is not None:
        extra += _tensor_bytes(state.absmax)
    scb = getattr(t, "SCB", None)
    if scb is not None:
        extra += _tensor_bytes(scb)
    return extra


def _logical_numel(t: Any) -> int:
    state = getattr(t, "quant_state", None)  # bnb 4-bit: packed data, the real shape is in quant_state
    if state is not None and getattr(state, "shape", None) is not None:
        n = 1
        for d in state.shape:
            n *= int(d)
        return n
    return int(t.numel())


def weight_memory(model: Any) -> WeightMemory:
    """Bytes of all parameters and persistent buffers held by `model`, and its logical parameter count."""
    seen: set[int] = set()
    total = 0
    logical = 0
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(module, "weight") and callable(module.weight):  # torch dynamic int8
            w = module.weight()
            b = module.bias() if callable(getattr(module, "bias", None)) else None
            total += _tensor_bytes(w) + (0 if b is None else _tensor_bytes(b)) + 8  # + fp32 scale, int32 zero point
            logical += w.numel() + (0 if b is None else b.numel())
        for t in list(module.parameters(recurse=False)):
            key = id(t)
            if key in seen:
                continue
            seen.add(key)
            total += _tensor_bytes(t) + _bnb_extra(t)
            logical += _logical_numel(t)
        for name, buf in module.named_buffers(recurse=False):
            if buf is None or id(buf) in seen or name in getattr(module, "_non_persistent_buffers_set", set()):
                continue
            seen.add(id(buf))
            total += _tensor_bytes(buf)
    return WeightMemory(bytes=int(total), logical_params=int(logical))


def nominal_bytes(model: Any, bits: int, group_size: int | None) -> int:
    """Bytes a packed `bits`-bit format would need: quantizable Linear weights at `bits` (+ one fp16 scale
    per group), everything else at fp16. Used for the RTN simulator, which holds dequantized weights."""
    from quantrisk.models.quantizers.base import quantizable_linears

    quantized = {id(m.weight): m.weight.numel() for m in quantizable_linears(model).values()}
    total = 0.0
    seen: set[int] = set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        if id(p) in quantized:
            groups = -(-n // group_size) if group_size else p.shape[0]
            total += n * bits / 8 + 2 * groups
        else:
            total += 2 * n
    return int(total)
