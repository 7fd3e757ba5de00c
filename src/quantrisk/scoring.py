"""Batched token log-prob engine shared by every attack and metric (the hot path).

For a text x = t_1..t_n (the tokenizer's ids, no special tokens added), the engine returns
ℓ_i = log p(t_i | t_<i) for i = 2..n (the first token is unscored) and, from the same forward pass,
the mean μ_i = Σ_v p_v log p_v and variance σ_i² = Σ_v p_v (log p_v)² − μ_i² of log p over the
vocabulary at each scored position (for Min-K%++).

How: texts are sorted by length and packed into batches under a token budget (length bucketing);
batches are right- (default) or left-padded with an attention mask and explicit position ids, so
every row sees the positions it would see alone;
only real positions go through the output head, in chunks, and their statistics come from
`vocab_stats` (no full-vocabulary fp32 log-softmax for the whole batch). Texts longer than the
context are truncated (default) or scored with a sliding window of stride `stride`, where each
token is scored once with as much left context as the window allows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantrisk.vocab_stats import vocab_stats

# model_type -> the body returns final-normed hidden states and the output head is a plain projection
FAST_PATH_TYPES = {"gpt_neox", "codegen", "gpt_neo", "llama", "mistral", "qwen2", "gpt2", "gpt_bigcode", "starcoder2"}


@dataclass
class TokenScores:
    """Scores of one text, float64. token_ids (n,): the input ids. logprobs, mu, var (m,): one per scored
    position, m = n-1 normally; fewer when the text was truncated at the context (m = context-1) or
    scoring started after a prefix (`score_from`)."""

    token_ids: np.ndarray
    logprobs: np.ndarray
    mu: np.ndarray
    var: np.ndarray

    @property
    def n_scored(self) -> int:
        return int(self.logprobs.shape[0])


def model_context(model: Any) -> int:
    """Longest sequence the model takes (tokens)."""
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


def model_device(model: Any) -> Any:
    """Device of the model's first parameter (where inputs must go)."""
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def body_and_head(model: Any) -> tuple[Any, Any] | None:
    """(body returning final-normed hidden states, output head) of a causal LM whose type splits so
    (`FAST_PATH_TYPES`), else None."""
    mtype = getattr(model.config, "model_type", "")
    if mtype not in FAST_PATH_TYPES:
        return None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    body = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if head is None or body is None or body is model:
        return None
    return body, head


_COMPILED: dict[int, Any] = {}


def _compiled(key: Any, fn: Any) -> Any:
    """torch.compile(fn), once per object (the compiled wrapper is reused across batches).

    Tuning knobs (environment): QUANTRISK_COMPILE_MODE, a torch.compile mode such as
    `max-autotune-no-cudagraphs` (default: torch's default); QUANTRISK_COMPILE_DYNAMIC=0 compiles one
    graph per batch shape instead of one shape-generic graph (worth it when all batches share a shape)."""
    import torch

    if id(key) not in _COMPILED:
        mode, dynamic = compile_settings()
        _COMPILED[id(key)] = torch.compile(fn, dynamic=dynamic, mode=mode)
    return _COMPILED[id(key)]


def compile_settings() -> tuple[str | None, bool]:
    """(torch.compile mode, dynamic) from QUANTRISK_COMPILE_MODE / QUANTRISK_COMPILE_DYNAMIC (see `_compiled`)."""
    return os.environ.get("QUANTRISK_COMPILE_MODE") or None, os.environ.get("QUANTRISK_COMPILE_DYNAMIC", "1") != "0"


def _head_stats(head: Any, hidden: Any, targets: Any) -> tuple[Any, Any, Any]:
    from quantrisk.vocab_stats import block_stats

    return block_stats(head(hidden), targets)


def _forward_stats(model: Any, ids: Any, mask: Any, positions: Any, chunk: int, compile: bool,
                   right_padded: bool = False) -> tuple[Any, Any, Any]:
    """(target logprob, mu, var) for every (row, position) pair with a real next token; flat (T,).

    Right-padded batches need no attention mask: under causal attention a real token never sees the
    pads after it, so the model runs its maskless (flash) attention path. `compile`: on CUDA, compiles the model
    body and the fused output-head + vocabulary-statistics step; on CPU, the vocabulary statistics only (fused
    into two passes per block; the body stays eager)."""
    import torch

    valid = mask[:, 1:].bool() & mask[:, :-1].bool()  # position j predicts token j+1
    targets = ids[:, 1:][valid]
    inputs = {"input_ids": ids} if right_padded else {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    use_compile = compile and ids.device.type == "cuda"
    cpu_fused = compile and ids.device.type == "cpu"
    split = body_and_head(model)
    if split is not None:
        body, head = split
        run_body = _compiled(body, body) if use_compile else body
        hidden = run_body(**inputs).last_hidden_state[:, :-1][valid]
        step = _compiled(head, _head_stats) if use_compile else None
        outs = []
        for i in range(0, hidden.shape[0], chunk):
            if step is not None:
                outs.append(step(head, hidden[i : i + chunk], targets[i : i + chunk]))
            else:
                outs.append(vocab_stats(head(hidden[i : i + chunk]), targets[i : i + chunk], chunk=chunk,
                                        inplace=not cpu_fused, compile=cpu_fused))
        if not outs:
            empty = torch.zeros(0, device=ids.device)
            return empty, empty, empty
        return tuple(torch.cat([o[k] for o in outs]) for k in range(3))  # type: ignore[return-value]
    logits = model(**inputs).logits[:, :-1][valid]  # boolean indexing copies: the block is ours to overwrite
    return vocab_stats(logits, targets, chunk=chunk, compile=compile, inplace=True)


def _windows(ids: list[int], max_length: int, stride: int | None) -> list[tuple[list[int], int]]:
    """(window ids, index within the window of the first token to score) covering `ids`."""
    if len(ids) <= max_length:
        return [(ids, 1)]
    if stride is None:
        return [(ids[:max_length], 1)]
    out = [(ids[:max_length], 1)]
    scored_to = max_length  # tokens [0, scored_to) are scored
    while scored_to < len(ids):
        end = min(scored_to + stride, len(ids))
        start = max(0, end - max_length)
        out.append((ids[start:end], scored_to - start))
        scored_to = end
    return out


def _plan_batches(widths: Sequence[int], batch_size: int, batch_tokens: int) -> list[list[int]]:
    """Length bucketing: indices sorted by width, packed so rows × widest row ≤ batch_tokens and rows ≤ batch_size."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(range(len(widths)), key=lambda j: widths[j]):
        if current and ((len(current) + 1) * widths[i] > batch_tokens or len(current) >= batch_size):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str) -> tuple[Any, Any, Any]:
    """(ids, attention mask, position ids), each (B, W) int64. Position ids count real tokens only, so a
    left-padded row sees the same positions as it would alone."""
    import torch

    width = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        cols = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[row, cols] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, cols] = 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    return ids, mask, positions


def score_token_ids(
    model: Any,
    sequences: Sequence[Sequence[int]],
    *,
    score_from: Sequence[int] | None = None,
    batch_size: int = 64,
    batch_tokens: int = 8192,
    max_length: int | None = None,
    stride: int | None = None,
    pad_id: int = 0,
    padding_side: str = "right",
    chunk: int | None = None,
    compile: bool = False,
    device: Any = None,
    progress: bool = False,
) -> list[TokenScores]:
    """Score token-id sequences; one `TokenScores` per sequence, in input order.

    `score_from[k]` (default 1) is the first position of sequence k that is scored (e.g. after a
    ReCaLL prefix): ℓ is returned for positions score_from..n-1 (0-based). A batch holds at most
    `batch_size` rows and `batch_tokens` padded tokens. `max_length` caps the context (default: the
    model's); longer texts are truncated, or scored in sliding windows when `stride` is set.
    `padding_side` "right" (default) or "left": both give the same scores (positions are explicit).
    `chunk`: positions per output-head block (default 4096 on CUDA; 256 on CPU, where a (256, V) fp32
    block stays near the caches and the head's matmul is still efficient — see BENCHMARKS.md).
    """
    import torch

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if batch_size < 1 or batch_tokens < 1:
        raise ValueError("batch_size and batch_tokens must be positive")
    if stride is not None and stride < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    context = min(max_length or model_context(model), model_context(model))
    if context < 2:
        raise ValueError(f"max_length must be at least 2, got {context}")
    device = device if device is not None else model_device(model)
    if chunk is None:
        chunk = 4096 if torch.device(device).type == "cuda" else 256
    starts = list(score_from) if score_from is not None else [1] * len(sequences)
    pieces: list[tuple[int, list[int], int]] = []  # (sequence index, window ids, first scored index)
    for k, raw in enumerate(sequences):
        seq, first = list(raw), starts[k]
        if len(seq) < 2 or first >= len(seq) or first < 1:
            raise ValueError(f"sequence {k} has {len(seq)} token(s) and scoring starts at {first}: nothing to score")
        if first > 1:  # conditioned scoring (e.g. after a prefix): keep the tail that fits the context
            cut = max(0, len(seq) - context)
            pieces.append((k, seq[cut:], max(1, first - cut)))
        else:
            pieces.extend((k, window, start) for window, start in _windows(seq, context, stride))
    batches = _plan_batches([len(p[1]) for p in pieces], batch_size, batch_tokens)

    results: dict[int, list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]] = {}
    from quantrisk.progress import bar

    model_was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in bar(batches, desc="scoring", unit="batch", enabled=progress):
                ids, mask, positions = pad_batch([pieces[i][1] for i in batch], pad_id, padding_side)
                stats = _forward_stats(model, ids.to(device), mask.to(device), positions.to(device), chunk, compile,
                                       right_padded=padding_side == "right")
                lp, mu, var = (t.double().cpu().numpy() for t in stats)
                offset = 0
                for i in batch:  # flat outputs are row-major over the real (position, next token) pairs
                    k, seq, first = pieces[i]
                    n = len(seq) - 1
                    sl = slice(offset + first - 1, offset + n)
                    results.setdefault(k, []).append((i, lp[sl], mu[sl], var[sl]))
                    offset += n
    finally:
        model.train(model_was_training)
    out = []
    for k, seq in enumerate(sequences):
        parts = sorted(results[k], key=lambda r: r[0])
        out.append(TokenScores(
            token_ids=np.asarray(seq, dtype=np.int64),
            logprobs=np.concatenate([p[1] for p in parts]),
            mu=np.concatenate([p[2] for p in parts]),
            var=np.concatenate([p[3] for p in parts]),
        ))
    return out


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens added."""
    if not texts:
        return []
    return [list(x) for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def score_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 16,
    batch_tokens: int = 8192,
    max_length: int | None = None,
    stride: int | None = None,
    padding_side: str = "right",
    device: Any = None,
    progress: bool = False,
) -> list[TokenScores]:
    """Tokenise `texts` (no special tokens) and score them with `score_token_ids`.

    Every text must have at least 2 tokens (ValueError otherwise; callers filter and count skips)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return score_token_ids(model, tokenize(tokenizer, texts), batch_size=batch_size, batch_tokens=batch_tokens,
                           max_length=max_length, stride=stride, pad_id=pad, padding_side=padding_side,
                           device=device, progress=progress)
