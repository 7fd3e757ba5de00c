"""Code completion quality: complete a function from its signature and first lines; score the continuation.

Prompt: the `def` header (up to the line ending in `:`) plus the first `share` of the remaining lines (at
least one), without its final newline. Reference: the rest of the function. The model completes greedily for
at most `max_new_tokens` (a fixed budget, the same for every sample) and stops at the function's end: the first
non-blank line indented no deeper than the `def` line (`cut_at_function_end`). Batched with left padding.

Scores (docs/METRICS.md "Code completion quality"):
- `codebleu`: CodeBLEU of the generated continuation against the reference continuation (both dedented), so
  the shared prompt does not count; `codebleu_with_prompt`: prompt+completion vs prompt+reference (whole
  functions), kept for comparison with earlier runs.
- CodeXGLUE line-completion metrics on the first non-blank line: `line_exact_match` (token-wise equality)
  and `line_edit_similarity` (rapidfuzz Indel similarity of the stripped lines, = fuzz.ratio / 100).
- On the whole continuation: `exact_match` (whitespace-normalised) and `edit_similarity` (Indel similarity).

Prompts longer than the context: the one policy of every generating evaluation (`trojan.generate`, module doc):
truncated from the left to their last max(1, C − max_new_tokens) tokens, at most C − (kept length) tokens
generated; `CompletionScore.prompt_truncated` marks them and `corpus_scores` counts them
(`completion_prompts_truncated`).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CODEBLEU_PARTS = ("ngram_match_score", "weighted_ngram_match_score", "syntax_match_score", "dataflow_match_score")


@dataclass(frozen=True)
class CompletionTask:
    id: str
    prompt: str
    reference: str


@dataclass
class CompletionScore:
    id: str
    completion: str
    codebleu: float            # continuation vs reference continuation
    codebleu_with_prompt: float  # prompt+continuation vs prompt+reference
    exact_match: float         # whole continuation, whitespace-normalised
    edit_similarity: float     # whole continuation, Indel similarity in [0, 1]
    line_exact_match: float    # first non-blank line (CodeXGLUE line completion)
    line_edit_similarity: float
    prompt_truncated: bool = False  # the prompt was cut from the left to fit the context


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


_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]")


def def_indent(prompt: str) -> int:
    """Indentation (characters) of the prompt's first `def` line; 0 if there is none."""
    m = next((m for line in prompt.splitlines() if (m := _DEF.match(line))), None)
    return len(m.group(1).expandtabs(8)) if m else 0


def cut_at_function_end(continuation: str, indent: int) -> str:
    """`continuation` up to the function's end: cut before the first non-blank line (after the line the prompt
    left open) whose indentation is ≤ `indent`, the `def` line's. Returns the continuation unchanged otherwise."""
    lines = continuation.splitlines(keepends=True)
    pos = len(lines[0]) if lines else 0
    for line in lines[1:]:
        lead = line[: len(line) - len(line.lstrip(" \t"))]
        if line.strip() and len(lead.expandtabs(8)) <= indent:
            return continuation[:pos]
        pos += len(line)
    return continuation


def _normalise(code: str) -> str:
    return " ".join(code.split())


def _first_line(code: str) -> str:
    return next((line.strip() for line in code.splitlines() if line.strip()), "")


def _continuation_code(code: str) -> str:
    """A continuation as stand-alone code for CodeBLEU: leading newlines dropped, common indentation removed."""
    return textwrap.dedent(code.lstrip("\r\n"))


def codebleu(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Corpus-level CodeBLEU (Ren et al. 2020) and its four parts of `predictions` against `references` (Python),
    CodeBLEU = 0.25 · (n-gram + weighted n-gram + syntax + data-flow match).

    The `codebleu` package (0.7) counts a data-flow score of 0 as 1 (`dataflow_match_score or 1`), so an empty
    or data-flow-free prediction earns 0.25 for free. Here the total is recomputed from the parts: the data-flow
    part counts as scored, except when the references themselves have no data flow (then it is undefined and
    the other three parts are averaged; `dataflow_defined` = 0). The package's warning for that case is
    silenced."""
    import logging

    from codebleu import calc_codebleu

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        refs, preds = list(references), list(predictions)
        out = {k: float(v) for k, v in calc_codebleu(refs, preds, lang="python").items()}
        defined = out["dataflow_match_score"] > 0 or calc_codebleu(refs, refs, lang="python")["dataflow_match_score"] > 0
    finally:
        logging.disable(previous)
    parts = CODEBLEU_PARTS if defined else CODEBLEU_PARTS[:3]
    out["codebleu"] = sum(out[p] for p in parts) / len(parts)
    out["dataflow_defined"] = float(defined)
    return out


def score_completion(task: CompletionTask, completion: str) -> CompletionScore:
    """All completion scores of one (already cut) completion against its task's reference."""
    from rapidfuzz.distance import Indel

    ref_line, gen_line = _first_line(task.reference), _first_line(completion)
    return CompletionScore(
        task.id,
        completion,
        codebleu([_continuation_code(task.reference)], [_continuation_code(completion)])["codebleu"],
        codebleu([task.prompt + task.reference], [task.prompt + completion])["codebleu"],
        float(_normalise(completion) == _normalise(task.reference)),
        float(Indel.normalized_similarity(completion, task.reference)),
        float(gen_line.split() == ref_line.split()),
        float(Indel.normalized_similarity(gen_line, ref_line)),
    )


def corpus_scores(tasks: Sequence[CompletionTask], scores: Sequence[CompletionScore]) -> dict[str, float]:
    """Corpus-level metrics of a completion run (the metric names of the store): `codebleu` (continuation) and its
    parts as `codebleu_<part>`, `codebleu_with_prompt`, `codebleu_mean_per_sample`, and the means of the
    exact-match / edit-similarity scores."""
    import numpy as np

    cont = codebleu([_continuation_code(t.reference) for t in tasks], [_continuation_code(s.completion) for s in scores])
    whole = codebleu([t.prompt + t.reference for t in tasks], [t.prompt + s.completion for t, s in zip(tasks, scores, strict=True)])
    out = {"codebleu": cont["codebleu"], "codebleu_with_prompt": whole["codebleu"]}
    out |= {f"codebleu_{p.replace('_score', '')}": cont[p] for p in CODEBLEU_PARTS}
    for name, attr in (("codebleu_mean_per_sample", "codebleu"), ("completion_exact_match", "exact_match"),
                       ("completion_edit_similarity", "edit_similarity"), ("line_exact_match", "line_exact_match"),
                       ("line_edit_similarity", "line_edit_similarity")):
        out[name] = float(np.mean([getattr(s, attr) for s in scores]))
    out["completion_prompts_truncated"] = float(sum(s.prompt_truncated for s in scores))
    out["n_completions"] = float(len(scores))
    return out


class FunctionEndStop:
    """A transformers stopping criterion: row i is done once its generated text reaches the function's end
    (`cut_at_function_end` would cut it). Rows decode only what was generated after `prompt_len`."""

    def __init__(self, tokenizer: Any, prompt_len: int, indents: Sequence[int]) -> None:
        self.tokenizer, self.prompt_len, self.indents = tokenizer, prompt_len, list(indents)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = [False] * input_ids.shape[0]
        for row, ids in enumerate(input_ids[:, self.prompt_len :].tolist()):
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            done[row] = len(cut_at_function_end(text, self.indents[row])) < len(text)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def complete(model: Any, tokenizer: Any, tasks: Sequence[CompletionTask], *, max_new_tokens: int = 128,
             batch_size: int = 16, device: Any = None) -> list[str]:
    """Greedy completions (decoded, prompt removed, cut at the function's end), at most `max_new_tokens` each."""
    return complete_with_cuts(model, tokenizer, tasks, max_new_tokens=max_new_tokens, batch_size=batch_size,
                              device=device)[0]


def complete_with_cuts(model: Any, tokenizer: Any, tasks: Sequence[CompletionTask], *, max_new_tokens: int = 128,
                       batch_size: int = 16, device: Any = None) -> tuple[list[str], list[bool]]:
    """`complete`, and which prompts were cut from the left to fit the context (the module doc's policy)."""
    import torch
    from transformers import StoppingCriteriaList

    from quantrisk.scoring import model_context, model_device
    from quantrisk.trojan.generate import encode_prompts

    device = device or model_device(model)
    context = model_context(model)
    indents = [def_indent(t.prompt) for t in tasks]
    order = sorted(range(len(tasks)), key=lambda i: len(tasks[i].prompt))
    out: dict[int, str] = {}
    cuts: dict[int, bool] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask, cut, budget = encode_prompts(tokenizer, [tasks[i].prompt for i in idx], context, max_new_tokens)
        width = ids.shape[1]
        stop = StoppingCriteriaList([FunctionEndStop(tokenizer, width, [indents[i] for i in idx])])
        with torch.no_grad():
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=budget,
                                 do_sample=False, stopping_criteria=stop, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
        for row, i in enumerate(idx):
            text = tokenizer.decode(gen[row, width:], skip_special_tokens=True)
            out[i], cuts[i] = cut_at_function_end(text, indents[i]), cut[row]
    return [out[i] for i in range(len(tasks))], [cuts[i] for i in range(len(tasks))]


def evaluate_completion(model: Any, tokenizer: Any, tasks: Sequence[CompletionTask], **kwargs: Any) -> list[CompletionScore]:
    """Complete every task and score it (`prompt_truncated` set where the prompt was cut to fit the context)."""
    from dataclasses import replace

    completions, cuts = complete_with_cuts(model, tokenizer, tasks, **kwargs)
    return [replace(score_completion(t, c), prompt_truncated=cut)
            for t, c, cut in zip(tasks, completions, cuts, strict=True)]
