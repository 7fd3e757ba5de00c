"""Token log-prob inputs under the target model: of the text (`target`), of the text lower-cased (`lower`), and of
the text after a prefix of known non-members (`conditioned`, ReCaLL)."""

from __future__ import annotations

from typing import Any

from quantrisk.privacy.inputs import InputContext, InputUnavailable, register_provider
from quantrisk.scoring import tokenize


@register_provider("target")
def target_logprobs(ctx: InputContext) -> list[Any]:
    """`TokenScores` of each sample's tokens under the target model (ℓ_i, μ_i, σ²_i; positions 2..n)."""
    return ctx.score(ctx.model, ctx.tokenizer, ctx.ids)


@register_provider("lower")
def lowercase_logprobs(ctx: InputContext) -> list[Any]:
    """`TokenScores` of each sample's text lower-cased, under the target model (None: fewer than 2 tokens)."""
    low_ids = tokenize(ctx.tokenizer, [s.text.lower() for s in ctx.samples])
    ok = [i for i, x in enumerate(low_ids) if len(x) >= 2]
    out: list[Any] = [None] * len(ctx.samples)
    for i, sc in zip(ok, ctx.score(ctx.model, ctx.tokenizer, [low_ids[i] for i in ok]), strict=True):
        out[i] = sc
    return out


@register_provider("conditioned")
def prefix_conditioned_logprobs(ctx: InputContext) -> list[Any]:
    """`TokenScores` of each sample's tokens scored after the prefix P = the first `prefix_n` known non-member texts
    (the set's `prefix_pool`) joined by blank lines; only the sample's own tokens are scored."""
    pool = ctx.mi_set.prefix_pool
    if not pool:
        raise InputUnavailable("no known non-member text left for the prefix (use a smaller --n)")
    prefix = tokenize(ctx.tokenizer, ["\n\n".join(pool[: ctx.options.prefix_n]) + "\n\n"])[0]
    seqs = [prefix + list(x) for x in ctx.ids]
    return ctx.score(ctx.model, ctx.tokenizer, seqs, score_from=[len(prefix) + 1] * len(seqs),
                     batch_tokens=max(ctx.options.batch_tokens, max(map(len, seqs), default=0)))
