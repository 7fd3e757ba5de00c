"""Neighbour log-probs under the target model (`neighbours`, for the code-aware neighbourhood attack)."""

from __future__ import annotations

from typing import Any

import numpy as np

from quantrisk.privacy.inputs import InputContext, register_provider

N_NEIGHBOURS = 4  # rewrites per sample (privacy/neighbours.py): up to 3 identifier renames + 1 respacing


@register_provider("neighbours")
def neighbour_mean_logprobs(ctx: InputContext) -> list[Any]:
    """Per sample: the mean over its neighbours x̃_j (`privacy.neighbours.neighbours`, seeded with the study's seed) of
    the mean token log-prob of x̃_j under the target model; None when the sample has no neighbour."""
    from quantrisk.privacy.neighbours import neighbours
    from quantrisk.scoring import tokenize

    texts, owner = [], []
    for i, s in enumerate(ctx.samples):
        for t in neighbours(s.text, N_NEIGHBOURS, seed=ctx.options.seed):
            texts.append(t)
            owner.append(i)
    ids = tokenize(ctx.tokenizer, texts)
    keep = [j for j, x in enumerate(ids) if len(x) >= 2]
    per: list[list[float]] = [[] for _ in ctx.samples]
    for j, sc in zip(keep, ctx.score(ctx.model, ctx.tokenizer, [ids[j] for j in keep]), strict=True):
        per[owner[j]].append(float(sc.logprobs.mean()))
    return [float(np.mean(v)) if v else None for v in per]
