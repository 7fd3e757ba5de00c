"""Code completion quality: complete a function from its signature and first lines; score with CodeBLEU.

Prompt: the `def` header (up to the line ending in `:`) plus the first `share` of the remaining
lines (at least one), without its final newline. Reference: the rest of the function. The model completes greedily for as
many tokens as the reference has (capped by `max_new_tokens`), batched with left padding.
Scores per sample: CodeBLEU (the `codebleu` package, Python grammar, default weights 0.25 each)
of prompt+completion against prompt+reference (whole functions, so the AST and data-flow parts see
parsable code), and, on the continuation alone, exact match (whitespace-normalised) and
normalised edit similarity (rapidfuzz Indel ratio / 100).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CompletionTask:
    id: str
    prompt: str
    reference: str


@dataclass
class CompletionScore:
    id: str
    completion: str
    codebleu: float
    exact_match: float
    edit_similarity: float


def make_task(sample_id: str, text: str, share: float = 0.5) -> CompletionTask | None:
    """Split a function into prompt / reference, or None if there is nothing left to complete."""
    lines = text.splitlines(keepends=True)
    header_end = next((i for i, line in enumerate(lines) if line.rstrip().endswith(":")), None)
    if header_end is None:
        return None
    body = lines[header_end + 1 :]
    if len(body) < 2:
        return None
    keep = max(1, min(len(body) - 1, round(share * len(body))))
    # the prompt stops before its last newline (BPE merges "\n" with the next line's indentation, so a
    # prompt ending in a bare "\n" would be a token boundary the model never saw mid-function)
    prompt = "".join(lines[: header_end + 1] + body[:keep])
    cut = len(prompt.rstrip("\n"))
    prompt, reference = prompt[:cut], prompt[cut:] + "".join(body[keep:])
    return CompletionTask(sample_id, prompt, reference) if reference.strip() else None


def _normalise(code: str) -> str:
    return " ".join(code.split())


def codebleu(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Corpus-level CodeBLEU (and its four parts) of `predictions` against `references` (Python).

    The package logs a warning when a reference has no data flow (its data-flow part is then 0);
    that is expected for short snippets and silenced here."""
    import logging

    from codebleu import calc_codebleu

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return {k: float(v) for k, v in calc_codebleu(list(references), list(predictions), lang="python").items()}
    finally:
        logging.disable(previous)


def score_completion(task: CompletionTask, completion: str) -> CompletionScore:
    """CodeBLEU / exact match / edit similarity of one completion against its reference."""
    from rapidfuzz.distance import Indel

    cb = codebleu([task.prompt + task.reference], [task.prompt + completion])["codebleu"]
    return CompletionScore(
        task.id,
        completion,
        float(cb),
        float(_normalise(completion) == _normalise(task.reference)),
        float(Indel.normalized_similarity(completion, task.reference)),
    )


def token_budgets(tokenizer: Any, tasks: Sequence[CompletionTask], max_new_tokens: int) -> list[int]:
    """Tokens to generate per task: the reference's token count, at least 1, at most `max_new_tokens`."""
    refs = [t.reference for t in tasks]
    lengths = [len(x) for x in tokenizer(refs, add_special_tokens=False)["input_ids"]] if refs else []
    return [min(max_new_tokens, max(1, n)) for n in lengths]


def complete(model: Any, tokenizer: Any, tasks: Sequence[CompletionTask], *, max_new_tokens: int = 128,
             batch_size: int = 16, device: Any = None) -> list[str]:
    """Greedy completions (decoded, prompt removed), as many tokens as each reference (capped)."""
    import torch

    from quantrisk.scoring import model_device

    device = device or model_device(model)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    budgets = token_budgets(tokenizer, tasks, max_new_tokens)
    order = sorted(range(len(tasks)), key=lambda i: budgets[i])
    out: dict[int, str] = {}
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([tasks[i].prompt for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=max(budgets[i] for i in idx), do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            new = gen[:, enc["input_ids"].shape[1] :]
            for row, i in enumerate(idx):
                out[i] = tokenizer.decode(new[row, : budgets[i]], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = old_side
    return [out[i] for i in range(len(tasks))]


def evaluate_completion(model: Any, tokenizer: Any, tasks: Sequence[CompletionTask], **kwargs: Any) -> list[CompletionScore]:
    """Complete every task and score it."""
    completions = complete(model, tokenizer, tasks, **kwargs)
    return [score_completion(t, c) for t, c in zip(tasks, completions, strict=True)]
