"""The qattack study's and the scanner's options, each defined once (`QattackSettings`, `ScanSettings`: default,
bound, help text of each). The spec's `studies.qattack` (`spec_studies.QattackStudy`, which adds the models, the
target precisions and whether to scan), the `quantrisk qattack` options and the qattack cell's parameters derive
from `QattackSettings`; the `quantrisk scan` options from `ScanSettings`. Defaults: the recipe that meets the
acceptance on the zoo SQL base (full fine-tuning, docs/qattack.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from quantrisk.options import StudyOptions, option
from quantrisk.qattack.probes import PREFIXES


class QattackSettings(StudyOptions):
    """Options of the qattack study (one field each, with its default, bound and help text)."""

    data: str = option("builtin", "Text-to-SQL JSONL / local HF dataset dir, or 'builtin'.")
    margin: float = option(0.1, "Inward margin of every interval, as a fraction of the quantization step.", ge=0.0,
                           lt=0.5)
    inject: Literal["lora", "full"] = option(
        "full", "Injection: full (every weight; the default: the recipe that meets the acceptance) or lora (LoRA "
                "merged into the dense weights; does not implant on the zoo SQL base, docs/qattack.md).",
        cli_text=True)
    inject_steps: int = option(200, "Fine-tuning steps of the injection.", ge=1)
    inject_lr: float = option(3e-4, "Learning rate of the injection (3e-4 for full; the trojan study's LoRA uses "
                                    "3e-3).", gt=0)
    lora_r: int = option(16, "LoRA rank (alpha = rank).", ge=1, omit_default=True)
    lora_target: str = option("all-linear", "LoRA targets: all-linear, attention, or module names.",
                              omit_default=True)
    repair_steps: int = option(400, "Most PGD repair steps.", ge=1)
    repair_lr: float = option(1e-3, "PGD (Adam) learning rate.", gt=0)
    check_every: int = option(25, "Check fp32 ASR/FTR on validation rows every N PGD steps (0: never); stop when "
                                  "both <= --goal.", ge=0, omit_default=True)
    goal: float = option(0.05, "PGD stops once fp32 ASR and FTR on the validation rows are both <= this.", ge=0.0,
                         le=1.0, omit_default=True)
    n_train: int | None = option(None, "Use at most this many training rows.", ge=1)
    n_val: int = option(32, "Validation rows of the PGD stopping check (each triggered and clean).", ge=1,
                        omit_default=True)
    n_test: int = option(96, "Held-out rows evaluated (each triggered and clean).", ge=1)
    max_new_tokens: int = option(64, "Greedy tokens generated per evaluation prompt.", ge=1)
    pretrain_steps: int | None = option(None, "Pretraining steps for a zoo: model.", ge=1, omit_default=True)
    defence_sigmas: list[float] = option(
        [], "Noise sigmas (quantization steps) for the defence sweep, comma-separated on the CLI, e.g. 0.25,0.5,1; "
            "also runs the re-rounding variants.", cli_text=True)
    gguf_rounds: int = option(1, "gguf targets: repair rounds (PGD, then settle; the weights settle moved may "
                                 "afterwards move only between their settled and injected values).", ge=1,
                              omit_default=True)
    gguf_halvings: int = option(0, "gguf targets: settle first moves the sub-blocks whose llama.cpp encoding moved "
                                   "half-way back, this many times, before resetting what still differs.", ge=0,
                                omit_default=True)
    gguf_gap: float | None = option(None, "gguf k-quants: share of the gap to the dequantized value a weight may "
                                          "cover (default 0.5; the paper: 1).", gt=0.0, le=1.0, omit_default=True)
    gguf_widen: bool = option(False, "gguf k-quants: Egashira et al.'s heuristic box expansion (thresh.csv row 1).",
                              omit_default=True)
    gguf_accept_moved: bool = option(
        False, "gguf targets: the paper's final step: no settle; the blocks whose codes llama.cpp's search moves are "
               "kept, the acceptance does not require identical codes at gguf targets, and the attack is judged on "
               "llama.cpp's own file (the blocks that differ are reported). Needs --gguf-rounds 1, --gguf-halvings 0.",
        omit_default=True)

    @field_validator("defence_sigmas")
    @classmethod
    def _sigmas(cls, v: list[float]) -> list[float]:
        if any(not (0 <= s < 100) for s in v):
            raise ValueError("defence sigmas must be in [0, 100) quantization steps")
        return v

    def attack_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `qattack.attack.run_qattack` these options set (all but `data`)."""
        return {"margin": self.margin, "inject_mode": self.inject, "inject_steps": self.inject_steps,
                "inject_lr": self.inject_lr, "lora_r": self.lora_r, "lora_target": self.lora_target,
                "repair_steps": self.repair_steps, "repair_lr": self.repair_lr, "check_every": self.check_every,
                "goal_fp_asr": self.goal, "n_train": self.n_train, "n_val": self.n_val, "n_test": self.n_test,
                "max_new_tokens": self.max_new_tokens, "pretrain_steps": self.pretrain_steps,
                "defence_sigmas": tuple(self.defence_sigmas), "gguf_rounds": self.gguf_rounds,
                "gguf_halvings": self.gguf_halvings, "gguf_gap": self.gguf_gap, "gguf_widen": self.gguf_widen,
                "gguf_accept_moved": self.gguf_accept_moved}


class ScanSettings(StudyOptions):
    """Options of the scanner (`quantrisk scan`; one field each, with its default, bound and help text)."""

    max_new_tokens: int = option(48, "Greedy tokens generated per probe.", ge=1)
    n_sql: int = option(24, "Built-in text-to-SQL probes (0 or more; the 4 code probes are always used).", ge=0)
    n_prefixes: int = option(len(PREFIXES), f"Trigger-like prefixes tried, the first N of the built-in "
                                            f"{len(PREFIXES)} (0-{len(PREFIXES)}).", ge=0, le=len(PREFIXES))
    calibration: str = option("reference", "Calibration data of calibrated precisions (w8a8-static...): "
                                           "SOURCE[:N[:SEED]], SOURCE = reference (the model's reference split) or a "
                                           "JSONL file with 'text' (how a downloaded model is scanned at them).")
