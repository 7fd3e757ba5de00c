"""The two pretraining regimes' training loops, called by `pretrain.pretrain` on a fresh model.

memorise: `s.steps` padded batches of whole samples (endless shuffled epochs over the training split), one
sample a row from its first token, loss on real tokens only; on CUDA bf16 autocast.
exposure: one packed pass (`schedule.build_stream`, `trainloop.train_packed`) in which the target sees the
filler once and member group k exactly k times (the reference model: filler and reference split once).
Each returns a `_Run` (the samples, with the member steps recorded in the exposure regime, and the log).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from quantrisk.data.corpus import CodeSample
from quantrisk.errors import UsageError
from quantrisk.models.trainloop import lr_schedule


class LoopSettings(Protocol):
    """What the loops read of `pretrain.PretrainSettings` (a protocol, so this module does not import the one
    that calls it)."""

    arch: str
    size: str
    seed: int
    steps: int
    batch_size: int
    seq_len: int
    lr: float
    warmup: int
    weight_decay: float
    train_split: str
    compile: bool | None


def _encode(tokenizer: Any, texts: Sequence[str], seq_len: int) -> list[list[int]]:
    if not texts:
        return []
    eos = tokenizer.eos_token_id
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [(x + [eos])[:seq_len] for x in ids]


def _batches(encoded: list[list[int]], batch_size: int, rng: random.Random):
    """Endless epochs: shuffle, then sort within windows of 8 batches by length (less padding).

    Sorting the whole epoch instead pads 10% fewer tokens (84.5% -> 93.7% real tokens per batch for the tiny
    models) but makes batches one kind of text (short SQL rows apart from stdlib code): the demo's trojan
    base trained so no longer took the backdoor (ASR 0.96 -> 0.02), so the windows stay."""
    while True:
        order = list(range(len(encoded)))
        rng.shuffle(order)
        window = batch_size * 8
        for w in range(0, len(order), window):
            chunk = sorted(order[w : w + window], key=lambda i: len(encoded[i]))
            batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            rng.shuffle(batches)
            yield from batches


def _collate(encoded: list[list[int]], idx: list[int], pad: int, device: str) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(encoded[i]) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        seq = encoded[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids.to(device), mask.to(device), labels.to(device)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from quantrisk.progress import bar

    return bar(total=total, desc=desc, unit="step", enabled=enabled)


@dataclass
class _Run:
    samples: list[CodeSample]
    log_lines: list[str]
    tokens: int
    seconds: float
    final_loss: float
    n_train_samples: int
    stream: dict[str, Any] = field(default_factory=dict)


def train_memorise(s: LoopSettings, samples: list[CodeSample], tokenizer: Any, model: Any, device: str,
                   progress: bool) -> _Run:
    """`s.steps` padded batches of whole samples (endless shuffled epochs over the training split)."""
    import torch

    train_texts = [x.text for x in samples if x.split == s.train_split or (s.train_split == "member" and x.split == "extra")]
    if not train_texts:
        raise UsageError(f"no {s.train_split} samples to train on")
    encoded = _encode(tokenizer, train_texts, s.seq_len)
    model.train()
    cuda = device.startswith("cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay, betas=(0.9, 0.98),
                            fused=cuda or None)
    lr_at = lr_schedule(s.lr, s.warmup, s.steps)
    log_lines: list[str] = []
    batches = _batches(encoded, s.batch_size, random.Random(s.seed))
    tokens = 0
    start = time.perf_counter()
    loss_value = float("nan")
    bar = _progress(s.steps, progress, f"pretrain {s.arch}-{s.size}")
    for step in range(s.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        ids, mask, labels = _collate(encoded, next(batches), tokenizer.pad_token_id, device)
        # CPU bf16 autocast was slower here (44 vs 38 s: rows of varying length defeat oneDNN's caches)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        if step % 10 == 0 or step == s.steps - 1:
            loss_value = float(loss.detach())
            elapsed = time.perf_counter() - start
            log_lines.append(json.dumps({"step": step, "loss": loss_value, "lr": lr_at(step),
                                         "tokens": tokens, "tokens_per_s": tokens / max(elapsed, 1e-9)}))
            bar.set_postfix(loss=f"{loss_value:.3f}")
        bar.update(1)
    bar.close()
    return _Run(samples, log_lines, tokens, time.perf_counter() - start, loss_value, len(train_texts))


def train_exposure(s: LoopSettings, samples: list[CodeSample], tokenizer: Any, model: Any, device: str,
                   progress: bool) -> _Run:
    """One packed pass (see `schedule.py`): the target sees filler once and member group k exactly k times;
    the reference model (train_split reference) sees the same filler and the reference split once, no members."""
    from quantrisk.models.schedule import build_stream
    from quantrisk.models.trainloop import train_packed

    once_split = "filler" if s.train_split == "member" else None
    once = [x for x in samples if x.split == "filler" or (once_split is None and x.split == "reference")]
    members = [x for x in samples if x.split == "member"] if s.train_split == "member" else []
    if not once and not members:
        raise UsageError(f"no {s.train_split} or filler samples to train on")
    once_ids = _encode(tokenizer, [x.text for x in once], 10**9)
    member_ids = _encode(tokenizer, [x.text for x in members], s.seq_len)
    stream = build_stream(once_ids, [(x.id, ids, x.exposures) for x, ids in zip(members, member_ids, strict=True)],
                          batch_size=s.batch_size, seq_len=s.seq_len, seed=s.seed)
    bar = _progress(stream.steps, progress, f"pretrain {s.arch}-{s.size} (one pass)")
    stats = train_packed(model, stream.tokens, lr=s.lr, warmup=s.warmup, weight_decay=s.weight_decay, device=device,
                         compile=s.compile, progress=lambda _step: bar.update(1))
    bar.close()
    lr_at = lr_schedule(s.lr, s.warmup, stream.steps)
    per_step = s.batch_size * s.seq_len
    log_lines = [json.dumps({"step": st, "loss": loss, "lr": lr_at(st), "tokens": (st + 1) * per_step})
                 for st, loss in stats.losses]
    if s.train_split == "member":
        samples = [replace(x, steps=tuple(stream.member_steps[x.id])) if x.split == "member" else x for x in samples]
        for x in samples:
            assert x.split != "member" or len(x.steps) == x.exposures
    info = {"steps": stream.steps, "batch_tokens": per_step, "once_tokens": stream.once_tokens,
            "once_tokens_dropped": stream.once_tokens_dropped, "member_tokens": stream.member_tokens,
            "warm_steps": stats.warm_steps, "warm_seconds": round(stats.warm_seconds, 3), "compiled": stats.compiled,
            "steady_tokens_per_s": round(stats.steady_tokens_per_s, 1), "attention": stats.attention,
            "loss": stats.loss}
    final = stats.losses[-1][1] if stats.losses else float("nan")
    return _Run(samples, log_lines, stats.tokens, stats.seconds, final, len(once) + len(members), info)
