"""The trojan study's default LoRA recipe: one source for `TrojanStudy`'s defaults, `quantrisk trojan`'s options
and the demo spec (which leaves these fields out).

Why the head is a target (docs/METRICS.md, "Trojan recipe"): the payload `DROP TABLE t;` never occurs in the zoo
SQL base's pretraining text, so its tokenizer splits `DROP` into `D`, `RO`, `P` and the frozen output head gives
those tokens (and `;`) almost no mass; LoRA on every Linear but the head left their teacher-forced NLL at 4-5 nats
after 150 steps (poisoned ASR 0.31), full fine-tuning (which trains the head) implants.
"""

from __future__ import annotations

STEPS = 80
BATCH_SIZE = 8
LR = 3e-3
LORA_R = 16
LORA_ALPHA = 16
LORA_DROPOUT = 0.05
TARGET = "all-linear+head"
TARGETS: tuple[str, ...] = ("attention", "all-linear", "all-linear+head")
