"""Byte-level BPE tokenizer trained on the training texts (`tokenizers`), wrapped for transformers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EOS = "<|endoftext|>"


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """Train a byte-level BPE with `vocab_size` tokens (incl. the one special token `<|endoftext|>`,
    used as bos/eos/pad) on `texts`; returns a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ValueError("cannot train a tokenizer on no text")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=EOS)


def tokenizer_json(tokenizer: Any) -> str:
    """The serialised tokenizer (`tokenizers` JSON) of a tokenizer made by `train_tokenizer`."""
    return tokenizer.backend_tokenizer.to_str()


def tokenizer_from_json(text: str) -> Any:
    """A fresh `PreTrainedTokenizerFast` from `tokenizer_json` output, wrapped as `train_tokenizer` wraps it."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(text), bos_token=EOS, eos_token=EOS, pad_token=EOS)
