"""Plain causal attention for packed pretraining, where no sequence has padding.

Why this exists: under `torch.compile`, transformers (≤ 5.2x with torch < 2.14) cannot prove that the causal mask is
redundant, so it materialises a (batch, 1, L, L) mask and passes it to SDPA. With an explicit mask PyTorch cannot
use its flash-attention kernel and computes every block, including the masked upper triangle. In packed training
every row is a full window of real tokens, so SDPA's own `is_causal=True` is exact. We register an attention
function with transformers' `AttentionInterface` that hands transformers' own SDPA forward `attention_mask=None,
is_causal=True`; because the name is not in transformers' mask registry, no mask is built at all.

Only for architectures whose attention goes through the interface and has no local windows (GPT-Neo's
local layers need their mask): `supports(model)` says which.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NAME = "quantrisk_packed_causal"
# Architectures whose attention dispatches through transformers' AttentionInterface with a plain causal mask
# (no local windows, no position bias); any other model keeps its own attention.
_SUPPORTED = frozenset({"gpt_neox", "llama", "mistral", "qwen2", "gpt2"})


def _packed_causal_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, *args: Any,
                           **kwargs: Any) -> tuple[Any, None]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    kwargs.pop("is_causal", None)
    return sdpa_attention_forward(module, query, key, value, None, *args, is_causal=True, **kwargs)


def _register() -> None:
    from transformers import AttentionInterface

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, _packed_causal_forward)


def supports(model: Any) -> bool:
    """True if `model` (an HF causal LM) can train with plain causal attention: its attention dispatches through
    transformers' AttentionInterface, it uses SDPA now, and it has no sliding/local window."""
    config = model.config
    if config.model_type not in _SUPPORTED or getattr(config, "sliding_window", None):
        return False
    can_set = getattr(model, "_can_set_attn_implementation", None)
    return bool(can_set is None or can_set()) and config._attn_implementation == "sdpa"


@contextmanager
def packed_causal_attention(model: Any) -> Iterator[bool]:
    """Within the block, `model` attends with SDPA `is_causal=True` and no mask (exact only for unpadded rows).
    Yields whether it switched (False: the model is left as it was). The previous implementation is restored on
    exit, so a saved model keeps its usual attention."""
    if not supports(model):
        yield False
        return
    _register()
    before = model.config._attn_implementation
    model.set_attn_implementation(NAME)
    try:
        yield True
    finally:
        model.set_attn_implementation(before)
