"""Token frequencies of the corpus's reference part (`token_freq`, for DC-PDD): counted with the target tokenizer on
texts that are neither members nor non-members, so nothing is downloaded and no evaluated sample is counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quantrisk.privacy.inputs import InputContext, InputUnavailable, register_provider


def token_frequencies(tokenizer: Any, texts: list[str]) -> np.ndarray:
    """Laplace-smoothed unigram frequencies f(t) = (count(t) + 1) / (N + V) over the tokens of `texts`, shape (V,),
    V = len(tokenizer) (as DC-PDD, Zhang et al. 2024)."""
    from quantrisk.scoring import tokenize

    vocab = len(tokenizer)
    counts = np.zeros(vocab, dtype=np.float64)
    for ids in tokenize(tokenizer, texts):
        np.add.at(counts, np.asarray(ids, dtype=np.int64), 1.0)
    return (counts + 1.0) / (counts.sum() + vocab)


@register_provider("token_freq", target_model=False)
def reference_token_frequencies(ctx: InputContext) -> list[Any]:
    """The same (V,) frequency vector for every sample: tokens of the reference part of the model's split.jsonl."""
    from quantrisk.data.corpus import load_split

    split_file = Path(ctx.source) / "split.jsonl"
    if not split_file.is_file():
        raise InputUnavailable("no reference text to count token frequencies on (needs a quantrisk-pretrained "
                               "model's split.jsonl)")
    texts = [s.text for s in load_split(ctx.source) if s.split == "reference"]
    if not texts:
        raise InputUnavailable("the model's split.jsonl has no reference part to count token frequencies on")
    freq = token_frequencies(ctx.tokenizer, texts)
    return [freq] * len(ctx.samples)
