"""How many evaluation inputs were longer than the model's context, per study, as one sentence for its section.

The policy (one for every study, `trojan.generate` module doc): a generation prompt is cut from the left to fit
the context with its token budget; an MI text is scored on the part that fits (the zlib attack on that span).
Counts are summed over the finished cells of the study from the metrics they store: privacy `n_truncated` of
`n_samples` texts and `completion_prompts_truncated` of `n_completions` prompts; trojan `n_prompts_truncated` of
the cell's `n_inputs` (triggered + clean). A store written before these metrics existed gets no sentence.
"""

from __future__ import annotations

from collections import defaultdict

from quantrisk import formats as F
from quantrisk.store import Store


def _sums(store: Store, kind: str, names: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for r in store.metrics(kind):
        if r["name"] in names and r["value"] is not None:
            out[r["name"]] += float(r["value"])
    return out


def privacy_truncation(store: Store) -> str:
    """`Longer than the context: 3 of 1,200 MI texts (...); 0 of 80 completion prompts (...).` or ``."""
    s = _sums(store, "privacy", ("n_truncated", "n_samples", "completion_prompts_truncated", "n_completions"))
    parts = []
    if "n_truncated" in s and "n_samples" in s:
        parts.append(f"{F.count(s['n_truncated'])} of {F.count(s['n_samples'])} MI texts (scored on the part "
                     "that fits; the zlib attack on that span)")
    if "completion_prompts_truncated" in s and "n_completions" in s:
        parts.append(f"{F.count(s['completion_prompts_truncated'])} of {F.count(s['n_completions'])} completion "
                     "prompts (cut from the left)")
    return f"Longer than the model's context, summed over the cells: {'; '.join(parts)}." if parts else ""


def trojan_truncation(store: Store) -> str:
    """`Longer than the context: 0 of 240 prompts (cut from the left).` or ``."""
    s = _sums(store, "trojan", ("n_prompts_truncated", "n_inputs"))
    if "n_prompts_truncated" not in s or "n_inputs" not in s:
        return ""
    return (f"Longer than the model's context, summed over the cells: {F.count(s['n_prompts_truncated'])} of "
            f"{F.count(s['n_inputs'])} prompts (cut from the left to fit with the generation budget).")
