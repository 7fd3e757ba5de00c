"""Calibration data of the trojan study: what a calibrated DAP2 precision (w8a8-static, gptq-*) runs through the
merged base + adapter before it quantizes.

It must be text the deployed model sees, and never the evaluation set. Sources (`data.calibration.CalibrationSpec`):

    train       the default ("auto" in a spec): the prompts (`data.sql.format_prompt`, what inference feeds the
                model) of the study's CLEAN training rows, i.e. the rows before poisoning, so no trigger is in them.
                Training rows whose prompt equals a test prompt (duplicates in the data) are left out of the pool
                and counted (`excluded`).
    reference   the base's own reference split (a quantrisk zoo base; code, not SQL).
    PATH.jsonl  a JSONL file with a "text" field per line.

`n` texts are drawn with `random.Random(seed)` from the pool in row-id / line order. Every source is then checked
against the held-out test rows: a calibration text that contains the clean or the triggered prompt of any test row
is an overlap, refused with a `UsageError` (the quantizer would have seen the evaluation inputs).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from quantrisk.data.calibration import DEFAULT_SOURCE, CalibrationSet, CalibrationSpec, load_calibration
from quantrisk.data.poison import triggered_and_clean
from quantrisk.data.sql import SqlRow, format_prompt
from quantrisk.errors import UsageError

TRAIN_SOURCE = "train"
AUTO_SOURCE = "auto"  # a spec's default: each study's own default (trojan: TRAIN_SOURCE)


def evaluation_prompts(test_rows: Sequence[SqlRow], trigger: str) -> list[str]:
    """The prompts the evaluation feeds the model: the triggered, then the clean copy of each test row."""
    triggered, clean = triggered_and_clean(test_rows, trigger)
    return [format_prompt(r) for r in triggered] + [format_prompt(r) for r in clean]


def check_disjoint(cal: CalibrationSet, test_rows: Sequence[SqlRow], trigger: str) -> None:
    """`UsageError` if any calibration text contains (or equals) a test row's clean or triggered prompt."""
    prompts = {p.strip() for p in evaluation_prompts(test_rows, trigger)}
    shared = sorted({p for p in prompts for t in cal.texts if p in t})
    if shared:
        raise UsageError(f"calibration {cal.spec.source} (n={cal.spec.n}, seed={cal.spec.seed}): {len(shared)} of "
                         f"the {len(prompts)} test prompts (triggered + clean) appear in its texts; calibration data "
                         "must never be evaluated: use 'train' (the clean training prompts) or another file")


def trojan_calibration(spec: CalibrationSpec, train_rows: Sequence[SqlRow], test_rows: Sequence[SqlRow], *,
                       trigger: str, base_dir: str | Path | None = None) -> CalibrationSet:
    """The calibration set of a trojan DAP2 cell (see the module doc), checked disjoint from `test_rows`.

    `train_rows`: the clean (unpoisoned) training rows; `base_dir`: the base model directory (source `reference`)."""
    source = TRAIN_SOURCE if spec.source == AUTO_SOURCE else spec.source
    spec = CalibrationSpec(source, spec.n, spec.seed)
    if source == TRAIN_SOURCE:
        evaluated = {p.strip() for p in evaluation_prompts(test_rows, trigger)}
        by_prompt: dict[str, str] = {}
        for r in sorted(train_rows, key=lambda r: r.id):
            by_prompt.setdefault(format_prompt(r), r.id)  # identical prompts once
        pool = [p for p in by_prompt if p.strip() not in evaluated]
        if not pool:
            raise UsageError("calibration train: no clean training prompt left that is not also a test prompt")
        texts = random.Random(spec.seed).sample(pool, spec.n) if spec.n < len(pool) else pool
        excluded = {"duplicate prompts": len(train_rows) - len(by_prompt),
                    "equal to a test prompt": len(by_prompt) - len(pool)}
        cal = CalibrationSet(spec, texts, f"clean training rows ({len(train_rows)}) of the trojan study",
                             {k: v for k, v in excluded.items() if v})
    elif source == DEFAULT_SOURCE:
        cal = load_calibration(spec, base_dir)
    else:
        cal = load_calibration(spec, None)
    check_disjoint(cal, test_rows, trigger)
    return cal
