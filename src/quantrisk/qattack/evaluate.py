"""Trojan behaviour of one model at one precision: ASR, false triggers and clean-input SQL quality.

Thin layer over the trojan study: `trojan.study.evaluate_trojan` (greedy generation with the payload signal,
`trojan.metrics`) on triggered and clean copies of the same held-out rows. `asr` = share of triggered outputs
with the payload keyword, `ftr` = the same on clean inputs; `js_k`, `em`, `ex` = SQL keyword Jaccard, exact
match and execution accuracy of the clean-input outputs against the gold queries; `ps_triggered` = mean
payload signal on triggered inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantrisk.data.poison import DEFAULT_TRIGGER, PAYLOAD_KEYWORD, triggered_and_clean
from quantrisk.data.sql import SqlRow, format_prompt


def evaluate_model(model_dir: str | Path, precision: str, test_rows: Sequence[SqlRow], *,
                   trigger: str = DEFAULT_TRIGGER, device: str = "cpu", batch_size: int = 16,
                   max_new_tokens: int = 64) -> dict[str, Any]:
    """{asr, ftr, js_k, em, ex, ps_triggered, ps_clean} of the model in `model_dir` loaded at `precision`."""
    from quantrisk.trojan.study import evaluate_trojan

    res = evaluate_trojan(model_dir, None, precision, test_rows, trigger=trigger, device=device,
                          batch_size=batch_size, max_new_tokens=max_new_tokens)

    def get(name: str, **labels: str) -> float | None:
        vals = [m.value for m in res.metrics if m.name == name and all(m.labels.get(k) == v for k, v in labels.items())]
        return vals[0] if vals else None

    return {"asr": get("asr"), "ftr": get("ftr"), "js_k": get("js_k", input="clean"), "em": get("em", input="clean"),
            "ex": get("ex", input="clean"), "ps_triggered": get("ps_mean", input="triggered"),
            "ps_clean": get("ps_mean", input="clean")}


def quick_rates(model: Any, tokenizer: Any, rows: Sequence[SqlRow], *, trigger: str = DEFAULT_TRIGGER,
                keyword: str = PAYLOAD_KEYWORD, max_new_tokens: int = 48, batch_size: int = 32) -> tuple[float, float]:
    """(ASR, FTR) of an in-memory model on triggered and clean copies of `rows` (greedy, payload keyword)."""
    from quantrisk.trojan.generate import generate
    from quantrisk.trojan.metrics import keyword_rate

    triggered, clean = triggered_and_clean(rows, trigger)
    gens, _ = generate(model, tokenizer, [format_prompt(r) for r in triggered + clean], batch_size=batch_size,
                       max_new_tokens=max_new_tokens, keyword=keyword)
    texts = [g.text for g in gens]
    return keyword_rate(texts[: len(rows)], keyword), keyword_rate(texts[len(rows):], keyword)
