"""Near-duplicate filtering across a membership split by n-gram overlap, as MIMIR does.

MIMIR (Duan et al. 2024, "Do Membership Inference Attacks Work on Large Language Models?", COLM,
arXiv:2402.07841, §3 and the benchmark's `ngram_13_0.8` configuration) drops a non-member whose n-gram overlap with
the training data is too high: overlap(x) = |{n-grams of x} ∩ {n-grams of the training set}| / |{n-grams of x}|
with n = 13 and threshold 0.8 (its stricter variants: 13-gram / 0.2 and 7-gram / 0.2). Here the n-grams are of
Python lexical tokens (`code_units.normalise_code`: comments and layout ignored; whitespace-split words for text that
does not tokenize), n = `NGRAM` = 13, and a sample is a near-duplicate when its overlap with the other side is
> `THRESHOLD` = 0.8. A text shorter than n tokens has no n-gram and is never a near-duplicate (exact and normalised
duplicates are caught before this).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from quantrisk.data.code_units import normalise_code

NGRAM = 13
THRESHOLD = 0.8


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The set of n-grams of `text`'s Python tokens (see the module doc)."""
    toks = normalise_code(text).split(" ")
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def overlap(grams: set[tuple[str, ...]], pool: set[tuple[str, ...]]) -> float:
    """Share of `grams` found in `pool` (0.0 for a text without n-grams)."""
    return len(grams & pool) / len(grams) if grams else 0.0


def near_duplicates(candidates: Sequence[str], against: Iterable[str], *, n: int = NGRAM,
                    threshold: float = THRESHOLD) -> list[int]:
    """Indices of `candidates` whose n-gram overlap with all of `against` is > `threshold`."""
    pool: set[tuple[str, ...]] = set()
    for text in against:
        pool |= ngrams(text, n)
    return [i for i, text in enumerate(candidates) if overlap(ngrams(text, n), pool) > threshold]
