"""Weight memory a model really holds, whatever back-end quantized it.

Counted per tensor: plain tensors as numel × element size; tensor subclasses that wrap inner tensors
(optimum-quanto's QTensors) as the sum of their inner tensors (`quantizers.base.tensor_bytes`). What a back-end
holds in its own layout is asked of the back-ends themselves (`Quantizer.held_layout`, `packed_layout`,
`tensor_extra_bytes`, `logical_numel`: torch's dynamic int8 Linear, HQQ's `HQQLinear`, bitsandbytes' absmax /
SCB statistics and packed 4-bit shapes), so this module names none. Tied weights are counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quantrisk.models.quantizers import QUANTIZERS
from quantrisk.models.quantizers.base import output_head_names, tensor_bytes

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
    return tensor_bytes(t) + sum(q.tensor_extra_bytes(t) for q in QUANTIZERS.values())


def _logical_numel(t: Any) -> int:
    for q in QUANTIZERS.values():
        n = q.logical_numel(t)
        if n is not None:
            return n
    return int(t.numel())


def _held_layout(module: Any) -> tuple[int, int, tuple[Any, ...]] | None:
    for q in QUANTIZERS.values():
        held = q.held_layout(module)
        if held is not None:
            return held
    return None


def _packed_layout(module: Any) -> tuple[Any, int, int, int] | None:
    for q in QUANTIZERS.values():
        layout = q.packed_layout(module)
        if layout is not None:
            return layout
    return None


def weight_memory(model: Any) -> WeightMemory:
    """Bytes of all parameters and persistent buffers held by `model`, and its logical parameter count.
    A model held outside torch (the llama.cpp runtime) reports its own through `quantrisk_weight_memory()`."""
    own = getattr(model, "quantrisk_weight_memory", None)
    if callable(own):
        held, params = own()
        return WeightMemory(bytes=int(held), logical_params=int(params))
    seen: set[int] = set()
    total = 0
    logical = 0
    for module in model.modules():
        held = _held_layout(module)
        if held is not None:
            total += held[0]
            logical += held[1]
            seen.update(id(t) for t in held[2])
        for pname, t in list(module.named_parameters(recurse=False)):
            key = id(t)
            if key in seen:
                continue
            seen.add(key)
            total += _tensor_bytes(t)
            if pname not in QUANT_METADATA:  # held, but not a parameter of the unquantized model
                logical += _logical_numel(t)
        for name, buf in module.named_buffers(recurse=False):
            if buf is None or id(buf) in seen or name in getattr(module, "_non_persistent_buffers_set", set()):
                continue
            seen.add(id(buf))
            total += tensor_bytes(buf)
    return WeightMemory(bytes=int(total), logical_params=int(logical))


def packed_bytes(model: Any, precision: Any) -> int:
    """Bytes a real file format would need for `model` at `precision` (a `Precision`), whatever is held in memory.

    dtype precisions (fp32/bf16/fp16): every parameter at `bits`/8 bytes. Quantized precisions: the weights of
    the Linear layers the back-ends quantize (all but the output head) at `bits` plus the fp16 scales its back-end
    keeps (`Quantizer.scale_count`; default one per group of `group_size` weights, per output row when the
    precision has no group size, e.g. int8), and everything
    else (embeddings, output head, norms, biases) at fp16 -- the layout of a packed GPTQ/GGUF-style checkpoint.
    Works on the quantized model (quanto QLinear, torch dynamic int8 Linear, bitsandbytes Linear4bit/8bitLt)
    through the logical (unpacked) element counts. A model that knows its file's size (a GGUF) reports it
    through `quantrisk_packed_bytes()`."""
    own = getattr(model, "quantrisk_packed_bytes", None)
    if callable(own):
        return int(own())
    if precision.is_float:
        return int(weight_memory(model).logical_params * precision.bits // 8)
    head = set(output_head_names(model))
    quantized: dict[int, tuple[int, int]] = {}  # id(weight) -> (numel, rows)
    extra = 0
    for name, module in model.named_modules():
        if name in head:
            continue
        layout = _packed_layout(module)
        if layout is not None:  # a back-end's own layer (its weight is no plain Parameter)
            weight, numel, rows, fp16_elements = layout
            extra += 2 * fp16_elements
            if weight is None:
                extra += _packed_weight(numel, rows, precision)
            else:
                quantized[id(weight)] = (numel, rows)
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
    """`bits`/8 bytes per weight plus 2 bytes per fp16 scale (as many as the back-end's `scale_count` says)."""
    return numel * precision.bits / 8 + 2 * QUANTIZERS[precision.backend].scale_count(numel, rows, precision)
