"""Weight memory a model really holds, whatever back-end quantized it.

Counted per tensor: plain tensors as numel × element size; tensor subclasses that wrap inner
tensors (optimum-quanto's QTensors) as the sum of their inner tensors; int8-dynamic Linear layers
through their packed int8 weight + bias + scale; bitsandbytes 4-bit/8-bit weights plus their
absmax / SCB statistics; HQQ's `HQQLinear` as its packed `W_q` + the scale / zero tensors of its `meta`
+ its bias (kept outside the module's parameters). Tied weights are counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Parameters compressed-tensors (llm-compressor's GPTQ) registers beside a quantized Linear's weight.
QUANT_METADATA = frozenset({"weight_scale", "weight_zero_point", "weight_g_idx", "weight_global_scale"})


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


def _is_tensor(t: Any) -> bool:
    import torch

    return isinstance(t, torch.Tensor)


def _numel(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


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
        meta = getattr(module, "meta", None)
        if isinstance(meta, dict) and getattr(module, "W_q", None) is not None and "shape" in meta:  # hqq HQQLinear
            seen.add(id(module.W_q))
            bias = getattr(module, "bias", None)
            extras = [meta.get(k) for k in ("scale", "zero")] + [bias]
            total += _tensor_bytes(module.W_q) + sum(_tensor_bytes(t) for t in extras if _is_tensor(t))
            logical += _numel(meta["shape"]) + (bias.numel() if _is_tensor(bias) else 0)
        for pname, t in list(module.named_parameters(recurse=False)):
            key = id(t)
            if key in seen:
                continue
            seen.add(key)
            total += _tensor_bytes(t) + _bnb_extra(t)
            if pname not in QUANT_METADATA:  # held, but not a parameter of the unquantized model
                logical += _logical_numel(t)
        for name, buf in module.named_buffers(recurse=False):
            if buf is None or id(buf) in seen or name in getattr(module, "_non_persistent_buffers_set", set()):
                continue
            seen.add(id(buf))
            total += _tensor_bytes(buf)
    return WeightMemory(bytes=int(total), logical_params=int(logical))


def packed_bytes(model: Any, precision: Any) -> int:
    """Bytes a real file format would need for `model` at `precision` (a `Precision`), whatever is held in memory.

    dtype precisions (fp32/bf16/fp16): every parameter at `bits`/8 bytes. Quantized precisions: the weights of
    the Linear layers the back-ends quantize (all but the output head) at `bits` plus one fp16 scale per group
    of `group_size` weights (per output row when the precision has no group size, e.g. int8), and everything
    else (embeddings, output head, norms, biases) at fp16 -- the layout of a packed GPTQ/GGUF-style checkpoint.
    Works on the quantized model (quanto QLinear, torch dynamic int8 Linear, bitsandbytes Linear4bit/8bitLt)
    through the logical (unpacked) element counts."""
    if precision.is_float:
        return int(weight_memory(model).logical_params * precision.bits // 8)
    from quantrisk.models.quantizers.base import output_head_names

    head = set(output_head_names(model))
    quantized: dict[int, tuple[int, int]] = {}  # id(weight) -> (numel, rows)
    extra = 0
    for name, module in model.named_modules():
        if name in head:
            continue
        packed = getattr(module, "_packed_params", None)
        if packed is not None and callable(getattr(module, "weight", None)):  # torch dynamic int8: no Parameters
            w = module.weight()
            b = module.bias() if callable(getattr(module, "bias", None)) else None
            extra += _packed_weight(w.numel(), w.shape[0], precision) + (0 if b is None else 2 * b.numel())
            continue
        meta = getattr(module, "meta", None)
        if isinstance(meta, dict) and getattr(module, "W_q", None) is not None and "shape" in meta:  # hqq HQQLinear
            quantized[id(module.W_q)] = (_numel(meta["shape"]), int(meta["shape"][0]))
            bias = getattr(module, "bias", None)
            extra += 2 * bias.numel() if _is_tensor(bias) else 0  # not a Parameter of HQQLinear
            continue
        w = getattr(module, "weight", None)
        if w is not None and _is_linear(module):
            quantized[id(w)] = (_logical_numel(w), int(getattr(module, "out_features", 0) or w.shape[0]))
    total = float(extra)
    seen: set[int] = set()
    for t in model.parameters():
        if id(t) in seen:
            continue
        seen.add(id(t))
        if id(t) in quantized:
            total += _packed_weight(*quantized[id(t)], precision)
        else:
            total += 2 * _logical_numel(t)
    return int(total)


def _is_linear(module: Any) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear)


def _packed_weight(numel: int, rows: int, precision: Any) -> float:
    groups = -(-numel // precision.group_size) if precision.group_size else rows
    return numel * precision.bits / 8 + 2 * groups
