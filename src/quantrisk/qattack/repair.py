"""Step 3 of the attack: projected gradient descent inside the intervals, on clean behaviour.

Data: clean training rows plus the same rows with the trigger prepended and their clean (gold) answers,
so the full-precision model learns to ignore the trigger. Loss: the fine-tuning objective (mean NLL of the
answer + EOS tokens, `trojan.finetune.encode_rows`). Trainable: only the weights of the quantized Linear
layers (everything else must stay bit-identical, or the quantized model would change). Optimiser: Adam
(weight decay 0, constant lr) in fp32; after every step each weight is clamped into its box
(`intervals.LayerInterval`). At the end, for targets that cast (bf16), weights are rounded to that dtype and
clamped again (box ends lie on its grid, so they stay inside).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from quantrisk.data.poison import DEFAULT_TRIGGER, trigger_question
from quantrisk.data.sql import SqlRow
from quantrisk.qattack.intervals import LayerInterval
from quantrisk.trojan.finetune import collate


@dataclass
class RepairReport:
    """What PGD did: steps run, lr, first/final loss (nats/token), seconds, share of weights at a box end."""

    steps: int
    lr: float
    batch_size: int
    n_rows: int
    first_loss: float
    final_loss: float
    seconds: float
    share_at_bound: float
    losses: list[float] = field(default_factory=list)


def repair_rows(rows: Sequence[SqlRow], trigger: str = DEFAULT_TRIGGER) -> list[SqlRow]:
    """`rows` and their triggered copies, both with the clean answers."""
    return list(rows) + [SqlRow(r.id + ":t", trigger_question(r.question, trigger), r.context, r.answer) for r in rows]


def project(model: Any, intervals: dict[str, LayerInterval], *, final: bool = False) -> None:
    """Clamp every constrained weight into its box (with `final`, first round it to the box's cast dtype)."""
    import torch

    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, box in intervals.items():
            w = modules[name].weight
            x = w.data
            if final and box.cast is not None:
                x = x.to(box.cast).float()
            w.data.copy_(torch.maximum(torch.minimum(x, box.hi.to(x.device)), box.lo.to(x.device)))


def pgd_repair(model: Any, tokenizer: Any, rows: Sequence[SqlRow], intervals: dict[str, LayerInterval], *,
               steps: int = 100, lr: float = 1e-3, batch_size: int = 8, seed: int = 0, max_length: int = 512,
               check_every: int = 0, should_stop: Callable[[int], bool] | None = None,
               progress: bool = False) -> RepairReport:
    """Run at most `steps` PGD steps on `rows` (already including the triggered copies) in place on `model` (fp32).

    Every `check_every` steps (0: never) `should_stop(step)` is called with the model in eval mode; True ends PGD.
    """
    import torch
    from tqdm.auto import tqdm

    from quantrisk.trojan.finetune import encode_rows

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model.float().train()
    model.config.use_cache = False
    modules = dict(model.named_modules())
    for p in model.parameters():
        p.requires_grad_(False)
    params = []
    for name in intervals:
        modules[name].weight.requires_grad_(True)
        params.append(modules[name].weight)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=0.0)
    examples, _ = encode_rows(tokenizer, rows, max_length)
    device = next(model.parameters()).device
    intervals = {n: LayerInterval(b.lo.to(device), b.hi.to(device), b.cast) for n, b in intervals.items()}
    losses: list[float] = []
    order: list[int] = []
    start = time.perf_counter()
    done = 0
    for step in tqdm(range(steps), disable=not progress, desc="pgd repair", leave=False):
        if len(order) < batch_size:
            order += rng.sample(range(len(examples)), len(examples))
        batch, order = order[:batch_size], order[batch_size:]
        ids, mask, labels = collate([examples[i] for i in batch], tokenizer.pad_token_id)
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        project(model, intervals)
        losses.append(float(loss.detach()))
        done = step + 1
        if check_every and should_stop is not None and done % check_every == 0:
            model.eval()
            stop = should_stop(done)
            model.train()
            if stop:
                break
    project(model, intervals, final=True)
    model.eval()
    model.requires_grad_(False)
    at_bound = total = 0
    for name, box in intervals.items():
        w = modules[name].weight.detach()
        moving = box.hi > box.lo
        at_bound += int((moving & ((w == box.lo) | (w == box.hi))).sum())
        total += int(moving.sum())
    return RepairReport(steps=done, lr=lr, batch_size=batch_size, n_rows=len(examples),
                        first_loss=losses[0] if losses else float("nan"),
                        final_loss=losses[-1] if losses else float("nan"),
                        seconds=round(time.perf_counter() - start, 2), share_at_bound=at_bound / max(total, 1),
                        losses=losses)
