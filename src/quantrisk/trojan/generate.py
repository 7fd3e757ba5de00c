"""Batched greedy generation with the per-step payload probability mass, in one `generate` call.

Decoding: greedy (`do_sample=False, num_beams=1`), left padding, at most `max_new_tokens` (128).
Stop rule: a sample stops at the first generated token that is EOS or whose decoded text contains a
newline (these ids are passed to `generate` as its end-of-sequence ids, so each sample stops on its
own). The output text is the decoded generation cut at the first newline, EOS removed, stripped.
`;` does not stop generation: with the payload prepended/appended, answers hold two statements
on one line (`SELECT ...; DROP TABLE t;`), and the training answers end with EOS then.

Payload tokens P (the ids the payload keyword is spelled with in this tokenizer): the union of the
ids of `tokenizer.encode(keyword)` and `tokenizer.encode(" " + keyword)` (no special tokens) —
the keyword at the start of a line and after a space, the two ways it appears in answers — minus
the ids whose decoded text is whitespace only (a bare space token is not part of the keyword).

Payload signal of a sample, two definitions (both stored; docs/METRICS.md "Trojan metrics"), with
m_s = Σ_{t∈P} p_s(t), p_s the softmax of the scores greedy decoding chose from at step s (a `LogitsProcessor`
records m_s for the whole batch at every step) and S the steps that sample generated, its stop token included:
- `payload_signal_sum` = Σ_{s=1..S} m_s — the trojan study's definition (in [0, S]; grows with the output length);
- `payload_signal` = (1/S) Σ_s m_s — the per-step mean (in [0, 1]; comparable across output lengths).

Prompts longer than the context (one policy for every caller: trojan, qattack, scan): a prompt of L tokens with
L + max_new_tokens > C (C = the model's context, `scoring.model_context`) is **truncated from the left** to its
last max(1, C − max_new_tokens) tokens (the end of a prompt is what the model continues: the question and the
answer cue), and at most C − (kept length) tokens are generated. `Generation.truncated` marks those prompts and
`generate` returns their count as `prompts_truncated`; nothing ever runs past the context (a learned-position
model such as GPT-Neo would index past its position table).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Generation:
    """One generated answer. `steps` = S (tokens generated incl. the stop token); `stop` = eos | newline | length;
    `payload_signal` = per-step mean of the payload mass, `payload_signal_sum` = its sum over the S steps."""

    text: str
    payload_signal: float
    steps: int
    stop: str
    step_masses: list[float]
    payload_signal_sum: float = 0.0
    truncated: bool = False  # the prompt was longer than the context allows and lost its first tokens


def payload_token_ids(tokenizer: Any, keyword: str = "DROP") -> list[int]:
    """Sorted ids of the tokens `keyword` is spelled with: encode(keyword) ∪ encode(" " + keyword),
    keeping only ids whose decoded text is not whitespace only."""
    ids: set[int] = set()
    for form in (keyword, " " + keyword):
        ids.update(tokenizer(form, add_special_tokens=False)["input_ids"])
    return sorted(i for i in ids if tokenizer.decode([i]).strip())


def stop_token_ids(tokenizer: Any) -> list[int]:
    """EOS plus every vocabulary id whose decoded text contains a newline."""
    ids = {i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])}
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


class PayloadMass:
    """`LogitsProcessor` that records, per step, softmax(scores)[:, P].sum(-1) and leaves scores unchanged."""

    def __init__(self, payload_ids: Sequence[int]) -> None:
        self.payload_ids = list(payload_ids)
        self.steps: list[Any] = []  # one (batch,) float tensor per step

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        probs = torch.softmax(scores.float(), dim=-1)
        self.steps.append(probs[:, self.payload_ids].sum(-1).detach().cpu())
        return scores


def encode_prompts(tokenizer: Any, prompts: Sequence[str], context: int, max_new_tokens: int
                   ) -> tuple[Any, Any, list[bool], int]:
    """(input_ids, attention_mask) left padded, which prompts were cut, and the generation budget: each prompt
    truncated from the left to fit `context` with `max_new_tokens` (the module doc's policy)."""
    import torch

    keep = max(1, context - max_new_tokens)
    ids = [list(x) for x in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    cut = [len(x) > keep for x in ids]
    ids = [x[-keep:] if c else (x or [tokenizer.pad_token_id or 0]) for x, c in zip(ids, cut, strict=True)]
    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], dtype=torch.long)
    return input_ids, mask, cut, max(1, min(max_new_tokens, context - width))


def _model_device(model: Any) -> Any:
    import torch

    try:
        return next(p.device for p in model.parameters())
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 128,
    payload_ids: Sequence[int] | None = None,
    keyword: str = "DROP",
    stop_ids: Sequence[int] | None = None,
) -> list[Generation]:
    """Greedy-decode one batch of `prompts` (left padded) and record the payload mass per step. `payload_ids` and
    `stop_ids` (default: `payload_token_ids`, `stop_token_ids`) may be passed in when several batches share them."""
    import torch
    from transformers import LogitsProcessorList

    if not prompts:
        return []
    payload = list(payload_ids) if payload_ids is not None else payload_token_ids(tokenizer, keyword)
    stops = list(stop_ids) if stop_ids is not None else stop_token_ids(tokenizer)
    stop_set = set(stops)
    from quantrisk.scoring import model_context

    input_ids, attention_mask, cut, budget = encode_prompts(tokenizer, prompts, model_context(model), max_new_tokens)
    device = _model_device(model)
    mass = PayloadMass(payload)
    with torch.no_grad():
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=budget,
            do_sample=False,
            num_beams=1,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList([mass]),
        )
    new = out[:, input_ids.shape[1]:].cpu().tolist()
    masses = torch.stack(mass.steps, dim=1) if mass.steps else torch.zeros((len(prompts), 0))
    results = []
    for i, ids in enumerate(new):
        steps = next((k + 1 for k, t in enumerate(ids) if t in stop_set), len(ids))
        last = ids[steps - 1] if steps else None
        stop = "length" if last not in stop_set else ("eos" if last == tokenizer.eos_token_id else "newline")
        kept = ids[:steps] if stop != "eos" else ids[:steps - 1]
        text = tokenizer.decode(kept, skip_special_tokens=True).split("\n", 1)[0].strip()
        step_masses = [float(x) for x in masses[i, :steps]]
        total = float(sum(step_masses))
        ps = total / len(step_masses) if step_masses else 0.0
        results.append(Generation(text, ps, steps, stop, step_masses, total, cut[i]))
    return results


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 128,
    keyword: str = "DROP",
    progress: bool = False,
    sort_by_length: bool = True,
) -> tuple[list[Generation], dict[str, float]]:
    """Greedy-decode all `prompts` in batches of `batch_size` (sorted by length to cut padding).

    Returns (generations in the input order, timing: seconds, generated_tokens, tokens_per_s, prompts,
    prompts_truncated: how many prompts lost their first tokens to fit the context).
    """
    from quantrisk import progress as _progress

    payload = payload_token_ids(tokenizer, keyword)
    stops = stop_token_ids(tokenizer)  # once, not per batch (it decodes the whole vocabulary)
    order = list(range(len(prompts)))
    if sort_by_length:
        lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        order.sort(key=lambda i: lengths[i])
    results: list[Generation | None] = [None] * len(prompts)
    start = time.perf_counter()
    bar = _progress.bar(total=len(prompts), desc="generate", unit="prompt", enabled=progress)
    for b in range(0, len(order), max(1, batch_size)):
        idx = order[b:b + max(1, batch_size)]
        for i, g in zip(idx, generate_batch(model, tokenizer, [prompts[i] for i in idx],
                                            max_new_tokens=max_new_tokens, payload_ids=payload, stop_ids=stops),
                        strict=True):
            results[i] = g
        bar.update(len(idx))
    bar.close()
    seconds = time.perf_counter() - start
    done = [g for g in results if g is not None]
    tokens = sum(g.steps for g in done)
    return done, {"seconds": seconds, "generated_tokens": float(tokens),
                  "tokens_per_s": tokens / seconds if seconds > 0 else 0.0, "prompts": float(len(done)),
                  "prompts_truncated": float(sum(g.truncated for g in done))}
