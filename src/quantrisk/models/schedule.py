"""The exposure regime's token stream: one pass over documents seen once, plus member documents inserted
exactly k times each, spread over the pass, packed into one contiguous tensor of training steps.

Layout: `steps x batch_size x seq_len` token ids. Each step holds `batch_size * seq_len` tokens: the member
copies scheduled for it (whole documents, EOS-terminated, at random document boundaries) and the next
tokens of the once-seen stream (documents in a seeded order, EOS-separated, cut at step boundaries like
any packed pretraining corpus). The copies of a member sit in steps `floor((j + phase) * steps / k)`,
j = 0..k-1 (a seeded phase per member), so two copies are at least `floor(steps / k) >= 2` steps apart:
never in the same or adjacent batches. The tail of the once-seen stream that does not fill a last step
is dropped and counted.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from quantrisk.errors import UsageError


@dataclass
class PackedStream:
    """`tokens`: int32 array (steps, batch_size, seq_len); `member_steps`: member id -> the steps it is in."""

    tokens: np.ndarray
    member_steps: dict[str, list[int]] = field(default_factory=dict)
    once_tokens: int = 0          # tokens of the once-seen documents that were trained on
    once_tokens_dropped: int = 0  # their tail that did not fill a last step
    member_tokens: int = 0        # tokens of all member copies

    @property
    def steps(self) -> int:
        return int(self.tokens.shape[0])


def _member_schedule(lengths: Sequence[int], ks: Sequence[int], steps: int, capacity: int,
                     rng: random.Random, tries: int = 32) -> list[list[int]]:
    """Steps of each copy of each member: k evenly spaced steps with a seeded phase, re-drawn (up to `tries`
    times) while a step would hold more member tokens than `capacity`."""
    load = [0] * steps
    out: list[list[int]] = [[] for _ in lengths]
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i] * ks[i]):  # biggest first: fewest conflicts
        k, n = ks[i], lengths[i]
        for _ in range(tries):
            phase = rng.random()
            chosen = [int((j + phase) * steps / k) for j in range(k)]
            if all(load[s] + n <= capacity for s in chosen):
                break
        else:
            raise UsageError(f"member copies do not fit the {steps} steps of the pass ({capacity} tokens each); "
                             "add filler, lower the exposures or the member count")
        for s in chosen:
            load[s] += n
        out[i] = chosen
    return out


def build_stream(
    once: Sequence[Sequence[int]],
    members: Sequence[tuple[str, Sequence[int], int]],
    *,
    batch_size: int,
    seq_len: int,
    seed: int,
) -> PackedStream:
    """Pack `once` (token ids of documents trained on once, each EOS-terminated) and `members` ((id, token ids
    EOS-terminated and at most `seq_len` long, exposures k)) into training steps (see the module doc)."""
    budget = batch_size * seq_len
    dup = next((m for m, n in Counter(m for m, _, _ in members).items() if n > 1), None)
    if dup is not None:
        raise UsageError(f"member id {dup!r} occurs more than once; member ids must be unique")
    if any(len(ids) > seq_len for _, ids, _ in members):
        raise UsageError(f"member documents must be at most seq_len={seq_len} tokens (truncate them first)")
    rng = random.Random(seed)
    order = list(range(len(once)))
    rng.shuffle(order)
    flat = np.concatenate([np.asarray(once[i], dtype=np.int32) for i in order]) if once else np.zeros(0, np.int32)
    member_total = sum(len(ids) * k for _, ids, k in members)
    steps = (len(flat) + member_total) // budget
    kmax = max((k for *_, k in members), default=1)
    if steps < 1 or steps < 2 * kmax:
        raise UsageError(f"the pass has {steps} steps of {budget} tokens; exposure {kmax} needs at least {2 * kmax} "
                         "so that copies are never in the same or adjacent batches (more data or a smaller batch)")
    schedule = _member_schedule([len(ids) for _, ids, _ in members], [k for *_, k in members], steps, budget, rng)
    per_step: list[list[int]] = [[] for _ in range(steps)]
    for i, chosen in enumerate(schedule):
        for s in chosen:
            per_step[s].append(i)
    out = np.empty((steps, budget), dtype=np.int32)
    pos = 0
    for s in range(steps):
        docs = [np.asarray(members[i][1], dtype=np.int32) for i in per_step[s]]
        room = budget - sum(len(d) for d in docs)
        chunk = flat[pos : pos + room]
        pos += room
        if docs:  # insert each member document at a random document boundary of the chunk (or its ends)
            eos = int(members[0][1][-1])
            cuts = np.flatnonzero(chunk == eos) + 1
            points = sorted(rng.choice([0, room, *cuts.tolist()]) for _ in docs)
            pieces, last = [], 0
            for p, d in zip(points, docs, strict=True):
                pieces += [chunk[last:p], d]
                last = p
            pieces.append(chunk[last:])
            chunk = np.concatenate(pieces)
        out[s] = chunk
    return PackedStream(
        tokens=out.reshape(steps, batch_size, seq_len),
        member_steps={members[i][0]: sorted(chosen) for i, chosen in enumerate(schedule)},
        once_tokens=pos, once_tokens_dropped=len(flat) - pos, member_tokens=member_total,
    )
