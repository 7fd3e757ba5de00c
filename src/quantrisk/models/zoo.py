"""Embedded model zoo: the four real architectures of the studies at sizes we can train here.

The size ladder: `tiny` (1.8M parameters with its 4096-token vocabulary) is for CPU tests and the demo;
`small` has the shape of Pythia-70m, `base` of Pythia-160m and `large` of Pythia-410m (GPU; 36M, 110M
and 336M parameters with the 16384-token vocabulary, untied embeddings): 180x from tiny to large. The
vocabulary size comes from the tokenizer trained on the corpus (see `pretrain.py`), so it is an
argument, not a constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quantrisk.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig, PreTrainedModel

ARCHS: tuple[str, ...] = ("pythia", "codegen", "gptneo", "llama")
SIZES: tuple[str, ...] = ("tiny", "small", "base", "large")

# HF model_type of each zoo architecture.
MODEL_TYPES: dict[str, str] = {
    "pythia": "gpt_neox",
    "codegen": "codegen",
    "gptneo": "gpt_neo",
    "llama": "llama",
}

# LoRA targets per HF model_type: the attention projections (the study's q/k/v/o or their equivalents).
ATTENTION_MODULES: dict[str, list[str]] = {
    "gpt_neox": ["query_key_value", "dense"],
    "codegen": ["qkv_proj", "out_proj"],
    "gpt_neo": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gpt2": ["c_attn", "c_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense"],
    "starcoder2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gpt_bigcode": ["c_attn", "c_proj"],
}


@dataclass(frozen=True)
class Shape:
    """Transformer dimensions shared by every architecture."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    context: int


SHAPES: dict[str, Shape] = {
    "tiny": Shape(hidden=128, layers=4, heads=4, intermediate=512, context=512),
    "small": Shape(hidden=512, layers=6, heads=8, intermediate=2048, context=1024),  # Pythia-70m
    "base": Shape(hidden=768, layers=12, heads=12, intermediate=3072, context=2048),  # Pythia-160m
    "large": Shape(hidden=1024, layers=24, heads=16, intermediate=4096, context=2048),  # Pythia-410m
}


def check_arch(arch: str) -> str:
    """Return `arch` if it is a zoo architecture, else raise a `UsageError` listing the valid ones."""
    if arch not in ARCHS:
        raise UsageError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    return arch


def check_size(size: str) -> str:
    """Return `size` if it is a zoo size, else raise a `UsageError` listing the valid ones."""
    if size not in SIZES:
        raise UsageError(f"unknown model size {size!r}; valid: {', '.join(SIZES)}")
    return size


def build_config(
    arch: str, size: str, vocab_size: int, *, bos_token_id: int = 0, eos_token_id: int = 0, pad_token_id: int | None = None
) -> PretrainedConfig:
    """HF config of zoo model `arch`/`size` with `vocab_size` tokens (untied input/output embeddings)."""
    from transformers import CodeGenConfig, GPTNeoConfig, GPTNeoXConfig, LlamaConfig

    check_arch(arch)
    s = SHAPES[check_size(size)]
    ids: dict[str, Any] = {"bos_token_id": bos_token_id, "eos_token_id": eos_token_id, "pad_token_id": pad_token_id}
    if arch == "pythia":
        return GPTNeoXConfig(
            vocab_size=vocab_size, hidden_size=s.hidden, num_hidden_layers=s.layers, num_attention_heads=s.heads,
            intermediate_size=s.intermediate, max_position_embeddings=s.context, rotary_pct=0.25,
            use_parallel_residual=True, tie_word_embeddings=False, **ids,
        )
    if arch == "codegen":
        head_dim = s.hidden // s.heads
        return CodeGenConfig(
            vocab_size=vocab_size, n_positions=s.context, n_ctx=s.context, n_embd=s.hidden, n_layer=s.layers,
            n_head=s.heads, rotary_dim=head_dim // 2, n_inner=s.intermediate, tie_word_embeddings=False, **ids,
        )
    if arch == "gptneo":
        return GPTNeoConfig(
            vocab_size=vocab_size, max_position_embeddings=s.context, hidden_size=s.hidden, num_layers=s.layers,
            num_heads=s.heads, intermediate_size=s.intermediate, window_size=256,
            attention_types=[[["global", "local"], s.layers // 2]], tie_word_embeddings=False, **ids,
        )
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=s.hidden, intermediate_size=s.intermediate * 2 // 3 // 64 * 64 or 64,
        num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.heads,
        max_position_embeddings=s.context, tie_word_embeddings=False, **ids,
    )


def build_model(arch: str, size: str, vocab_size: int, *, seed: int = 0, **token_ids: int | None) -> PreTrainedModel:
    """A freshly initialised (seeded) causal LM of zoo architecture `arch` at `size`, in fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    config = build_config(arch, size, vocab_size, **token_ids)  # type: ignore[arg-type]
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).float()


def attention_modules(model_type: str) -> list[str]:
    """LoRA target module names (attention projections) for an HF `model_type`."""
    try:
        return ATTENTION_MODULES[model_type]
    except KeyError:
        raise UsageError(
            f"no default LoRA target modules for model_type {model_type!r}; pass target modules explicitly "
            f"(known: {', '.join(sorted(ATTENTION_MODULES))})"
        ) from None
