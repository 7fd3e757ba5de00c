"""Shared fixtures: tiny zoo models with a tiny BPE tokenizer, saved with save_pretrained (safetensors)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

SNIPPET_SOURCE = inspect.getsource(inspect)  # real code from the stdlib to train the test tokenizer on


def make_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer trained in a second on stdlib code, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([SNIPPET_SOURCE[i : i + 2000] for i in range(0, len(SNIPPET_SOURCE), 2000)], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def save_tiny_model(out: Path, arch: str = "llama", seed: int = 0) -> Path:
    """Build zoo `arch`/tiny with the test tokenizer, save both under `out`, return `out`."""
    from quantrisk.models.zoo import build_model

    tok = make_tokenizer()
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    model = build_model(arch, "tiny", len(tok), seed=seed, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """arch -> directory of a saved (untrained) tiny zoo model, for all four architectures."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {arch: save_tiny_model(root / arch, arch) for arch in ("pythia", "codegen", "gptneo", "llama")}
