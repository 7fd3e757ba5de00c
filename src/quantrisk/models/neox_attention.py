"""GPT-NeoX attention for packed pretraining, token-major: no head-major copies around SDPA.

Why this exists: transformers' `GPTNeoXAttention` views the fused QKV projection as (batch, seq, heads, 3 * head)
and transposes it to head-major (batch, heads, seq, 3 * head) before splitting it and applying the partial rotary
embedding, so the rotated query/key are written head-major (a strided, transposing copy), SDPA's output is
transposed back with a copy, and the backward pass does the same in reverse. On an H100 those elementwise kernels
took ~10% of a `base` training step (BENCHMARKS.md, "Pretraining"). Here the same arithmetic runs in the
projection's own token-major layout: query and key are rotated together as one (batch, seq, heads, 2, head) view
(rotate-half written as x * c + swapped(x) * s with per-position tables, so the backward pass writes both
gradients in one kernel instead of stitching three), SDPA gets transposed *views* (its flash/cuDNN kernels take any
head/sequence strides and return the output in the query's layout), and the output is reshaped without a copy.
Four exact formulations were timed on an H100 (`benchmarks/gpu/neox_variants.py` (commit e46e141)); this one was fastest.
Attention is SDPA with `is_causal=True` and no mask (any attention_mask is ignored), so like `causal_attention.py`
it is exact only for unpadded rows (packed pretraining); with a KV cache or without rotary inputs the module's own
forward runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from quantrisk.models import causal_attention


def _rotary_tables(cos: Any, sin: Any, head_size: int) -> tuple[Any, Any]:
    """Per-position multipliers (batch, seq, head_size) such that `x * c + _swap_halves(x) * s` is rotate-half RoPE
    on the first R = cos.shape[-1] dims (c = cos, s = -sin on the first R/2 and sin on the next R/2) and the
    identity on the rest (c = 1, s = 0: x * 1 + x * 0 = x exactly)."""
    import torch
    import torch.nn.functional as F

    half, rest = cos.shape[-1] // 2, head_size - cos.shape[-1]
    c = F.pad(cos, (0, rest), value=1.0)
    s = F.pad(torch.cat([-sin[..., :half], sin[..., half:]], dim=-1), (0, rest), value=0.0)
    return c, s


def _swap_halves(x: Any, rotary: int) -> Any:
    """x[..., :rotary] with its two halves swapped, the rest of the last dim unchanged (rotate-half without the
    sign, which `_rotary_tables` puts in s)."""
    import torch

    half = rotary // 2
    return torch.cat([x[..., half:rotary], x[..., :half], x[..., rotary:]], dim=-1)


def _token_major_forward(self: Any, hidden_states: Any, attention_mask: Any = None, layer_past: Any = None,
                         position_embeddings: Any = None, **kwargs: Any) -> tuple[Any, None]:
    """`GPTNeoXAttention.forward` for unpadded causal rows; hidden_states (batch, seq, hidden) -> (batch, seq,
    hidden) after the output projection. The same arithmetic as transformers' `apply_rotary_pos_emb` (each element
    x * cos + (±x') * sin in the promoted dtype, the pass-through dims unchanged), in another memory order: query
    and key are rotated together as one (batch, seq, heads, 2, head) view of the projection, so the backward pass
    writes both gradients in one fused kernel; value stays a view."""
    import torch.nn.functional as F

    if layer_past is not None or position_embeddings is None:
        return type(self).forward(self, hidden_states, attention_mask, layer_past=layer_past,
                                  position_embeddings=position_embeddings, **kwargs)
    batch, seq = hidden_states.shape[:2]
    qkv = self.query_key_value(hidden_states).view(batch, seq, -1, 3, self.head_size)
    cos, sin = position_embeddings  # (batch, seq, rotary dims)
    c, s = _rotary_tables(cos, sin, self.head_size)
    qk = qkv[:, :, :, :2]  # (batch, seq, heads, 2, head) view: query and key
    qk = qk * c[:, :, None, None] + _swap_halves(qk, cos.shape[-1]) * s[:, :, None, None]
    query, key = qk.unbind(3)
    value = qkv[:, :, :, 2]
    out = F.scaled_dot_product_attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2),
                                         dropout_p=self.attention_dropout if self.training else 0.0,
                                         is_causal=True, scale=self.scaling)
    return self.dense(out.transpose(1, 2).reshape(batch, seq, -1)), None


def supports(model: Any) -> bool:
    """True if `model` is a GPT-NeoX causal LM on SDPA attention (the only architecture this forward reproduces)."""
    return model.config.model_type == "gpt_neox" and causal_attention.supports(model)


@contextmanager
def token_major_attention(model: Any) -> Iterator[bool]:
    """Within the block every `GPTNeoXAttention` of `model` runs `_token_major_forward` (exact for unpadded rows
    only). Yields whether it switched (False: not a GPT-NeoX model on SDPA; left as it was). The modules' own
    forward is restored on exit."""
    if not supports(model):
        yield False
        return
    from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXAttention

    modules = [m for m in model.modules() if isinstance(m, GPTNeoXAttention)]
    for module in modules:
        module.forward = _token_major_forward.__get__(module)
    try:
        yield True
    finally:
        for module in modules:
            del module.forward
