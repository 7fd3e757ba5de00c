"""Reference-model log-probs (`reference`): the same samples scored by the reference model at fp32."""

from __future__ import annotations

from typing import Any

from quantrisk.privacy.inputs import InputContext, InputUnavailable, register_provider
from quantrisk.scoring import tokenize


@register_provider("reference", target_model=False, reference_model=True)
def reference_logprobs(ctx: InputContext) -> list[Any]:
    """`TokenScores` of each sample under the reference model (loaded once at fp32; None: fewer than 2 tokens under
    its tokenizer). The whole member/non-member set is scored, as one batch plan, whatever the target kept."""
    from quantrisk.models.load import load_model

    source = ctx.reference.resolve()
    if source is None:
        raise InputUnavailable("no reference model")
    ref = load_model(source, "fp32", ctx.device)
    texts = [s.text for s in ctx.mi_set.samples]
    ids = tokenize(ref.tokenizer, texts)
    keep = [i for i, x in enumerate(ids) if len(x) >= 2]
    scores = ctx.score(ref.model, ref.tokenizer, [ids[i] for i in keep])
    by_id = {ctx.mi_set.samples[i].id: sc for i, sc in zip(keep, scores, strict=True)}
    del ref
    return [by_id.get(s.id) for s in ctx.samples]
