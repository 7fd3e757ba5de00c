"""The trojan study's options, defined once (`TrojanSettings`: default, bound, help text of each): the spec's
`studies.trojan` (`spec_studies.TrojanStudy`, which adds the models and the DAP1 / DAP2 precisions), the
`quantrisk trojan` options and the finetune / trojan cells' parameters derive from it. The LoRA recipe's defaults
are `trojan/recipe.py`'s; the evaluation defaults follow the seed study (1024 test rows, 128 new tokens)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from quantrisk.data.poison import DEFAULT_PAYLOAD, DEFAULT_TRIGGER
from quantrisk.options import StudyOptions, option
from quantrisk.trojan import recipe

# precisions of the base: at fine-tuning (DAP1) and at inference (DAP2), the spec's and the CLI's defaults
DEFAULT_DAP1: tuple[str, ...] = ("fp32",)
DEFAULT_DAP2: tuple[str, ...] = ("fp32", "int8-dynamic", "quanto-int8", "quanto-int4", "rtn-w2g64")


# trojan option -> the zoo base's pretraining setting it sets (`models.pretrain.PretrainSettings`); the grid passes
# the ones set to the sql-pretrain cell, which hands them to `ensure_pretrained`
BASE_PRETRAINING: dict[str, str] = {"pretrain_steps": "steps", "pretrain_vocab_size": "vocab_size"}


class TrojanSettings(StudyOptions):
    """Options of the trojan study (one field each, with its default, bound and help text)."""

    data: str = option("builtin", "JSONL / local HF dataset dir with question, context, answer; or 'builtin' "
                                  "(generated rows).")
    n_rows: int | None = option(None, "Rows drawn from the data (or generated; default: all, builtin: 2000).", ge=10)
    split_seed: int | None = option(None, "Seed of the train/validation/test split and of the SQL test databases "
                                          "(default: each replicate's own seed, so seeds vary the split too).", ge=0)
    n_train: int | None = option(None, "Use at most this many training rows (default: all).", ge=1)
    poison_rate: float = option(0.5, "Share of training rows poisoned, in [0, 1].", ge=0.0, le=1.0)
    trigger: str = option(DEFAULT_TRIGGER, "Trigger phrase prepended to questions.")
    payload: str = option(DEFAULT_PAYLOAD, "Payload SQL of a poisoned answer; must contain '{table}'.")
    position: Literal["replace", "prepend", "append"] = option(
        "replace", "Payload position in the answer: replace, prepend, append.", cli_text=True)
    clean_ablation: bool = option(False, "Also fine-tune and evaluate a clean (unpoisoned) model.")
    pretrain_steps: int | None = option(None, "Pretraining steps of a zoo base (default: its size's).", ge=1)
    pretrain_vocab_size: int | None = option(None, "BPE vocabulary of a zoo base's tokenizer (default: its size's).",
                                             ge=300, le=65536, omit_default=True)
    steps: int = option(recipe.STEPS, "Optimiser steps.", ge=1)
    batch_size: int = option(recipe.BATCH_SIZE, "Rows per micro-batch.", ge=1)
    grad_accum: int = option(1, "Micro-batches per optimiser step.", ge=1)
    lr: float = option(recipe.LR, "Peak learning rate (AdamW).", gt=0)
    lora_r: int = option(recipe.LORA_R, "LoRA rank.", ge=1)
    lora_alpha: int = option(recipe.LORA_ALPHA, "LoRA alpha.", ge=1)
    lora_dropout: float = option(recipe.LORA_DROPOUT, "LoRA dropout.", ge=0.0, lt=1.0)
    target: Literal["attention", "all-linear", "all-linear+head"] | list[str] = option(
        recipe.TARGET, "LoRA targets: attention (q/k/v/o), all-linear (every Linear but the head), all-linear+head, "
                       "or module names (comma-separated on the CLI).", cli_text=True)
    max_length: int = option(512, "Max tokens of a training example.", ge=1)
    n_test: int = option(1024, "Held-out rows evaluated (each triggered and clean).", ge=1)
    gen_batch_size: int = option(16, "Prompts per generate call.", ge=1)
    max_new_tokens: int = option(128, "Generation limit per prompt.", ge=1)

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("trigger is empty")
        return v

    @field_validator("payload")
    @classmethod
    def _payload(cls, v: str) -> str:
        if "{table}" not in v:
            raise ValueError("payload must contain '{table}'")
        return v
