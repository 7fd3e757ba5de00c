"""Blind baselines: model-free membership scores of a member / non-member set, and the check that the set is fit for
membership inference.

A membership-inference AUC means something only if members and non-members are exchangeable apart from training:
if a score that never looks at the model separates them, an attack may be reading the *distribution shift* of the
set, not the model's memory (Duan et al. 2024, "Do Membership Inference Attacks Work on Large Language Models?",
COLM, arXiv:2402.07841; Das, Zhang & Tramèr 2024, "Blind Baselines Beat Membership Inference Attacks for Foundation
Models", arXiv:2406.16201; Meeus et al. 2024, "SoK: Membership Inference Attacks on LLMs are Rushing Nowhere",
arXiv:2406.17975). Each baseline gives one score per sample (higher = "member"); its AUC is the raw ROC-AUC with
members positive (0.5 = no signal; below 0.5 = non-members score higher), with a 95% stratified percentile bootstrap
CI (`stats.bootstrap_ci`).

Baselines (formulas; docs/METRICS.md "Blind baselines"):
- `length_chars`: number of characters.
- `zlib_ratio`: len(zlib.compress(utf8, 9)) / len(utf8), the compressibility the zlib attack divides by
  (Carlini et al. 2021, "Extracting Training Data from Large Language Models", USENIX Security).
- `chars_per_token`: characters / tokens of the model's tokenizer (a tokenizer fitted on members compresses them
  better: the testbed defect of issue 24).
- `rare_ref_share`: share of the sample's tokens whose count in the tokenized reference split is ≤ 2 (what a
  reference model trained on that split barely saw; needs a reference split).
- `unseen_ref_token`: 1 if the sample has a token that never occurs in the tokenized reference split, else 0.
- `bow_cv`: a bag-of-words logistic regression (identifier / symbol tokens, counts, L2, C = 1) scored out of fold by
  stratified 5-fold cross-validation (scikit-learn); each sample's score is the member probability from the model
  that did not train on it (Das et al. 2024's bag-of-words classifier).

The check (`blind_check`): a set FAILS when some blind AUC's whole 95% CI lies beyond 0.5 ± `BLIND_MARGIN`, or when
a blind AUC, oriented either way (max(AUC, 1 − AUC): an auditor may flip a score), is ≥ the attack's AUC. The
label-permutation sanity check (`permutation_auc`) scores an attack against randomly permuted labels: a correct
pipeline gives ≈ 0.5 (a value far from it means the score depends on the labels or the sample order).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quantrisk.margins import BLIND_MARGIN  # |AUC − 0.5| a model-free score may show (defined once there)
from quantrisk.stats import bootstrap_ci, fast_auc

RARE_COUNT = 2  # a token seen at most this many times in the reference split is "rare" (`rare_ref_share`)
BOW_FOLDS = 5
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")


@dataclass(frozen=True)
class BlindAUC:
    """One baseline's AUC (members positive) with its 95% bootstrap CI, over `n_members` + `n_nonmembers`."""

    baseline: str
    auc: float
    low: float
    high: float
    n_members: int
    n_nonmembers: int


def length_chars(texts: Sequence[str]) -> np.ndarray:
    """Characters per sample."""
    return np.array([len(t) for t in texts], dtype=float)


def zlib_ratio(texts: Sequence[str]) -> np.ndarray:
    """zlib-compressed bytes (level 9) / UTF-8 bytes per sample (lower = more compressible)."""
    out = []
    for t in texts:
        raw = t.encode("utf-8")
        out.append(len(zlib.compress(raw, 9)) / max(len(raw), 1))
    return np.array(out, dtype=float)


def chars_per_token(texts: Sequence[str], token_ids: Sequence[Sequence[int]]) -> np.ndarray:
    """Characters / tokens per sample (`token_ids`: the tokenizer's ids of each text, no special tokens)."""
    return np.array([len(t) / max(len(ids), 1) for t, ids in zip(texts, token_ids, strict=True)], dtype=float)


def reference_counts(reference_ids: Iterable[Sequence[int]]) -> Counter[int]:
    """How often each token id occurs in the tokenized reference split."""
    counts: Counter[int] = Counter()
    for ids in reference_ids:
        counts.update(ids)
    return counts


def rare_ref_share(token_ids: Sequence[Sequence[int]], counts: Counter[int], rare: int = RARE_COUNT) -> np.ndarray:
    """Share of each sample's tokens seen ≤ `rare` times in the reference split (`counts`)."""
    return np.array([sum(counts[i] <= rare for i in ids) / max(len(ids), 1) for ids in token_ids], dtype=float)


def unseen_ref_token(token_ids: Sequence[Sequence[int]], counts: Counter[int]) -> np.ndarray:
    """1.0 if a sample has a token that never occurs in the reference split, else 0.0."""
    return np.array([float(any(counts[i] == 0 for i in ids)) for ids in token_ids], dtype=float)


def bow_cv(texts: Sequence[str], labels: Sequence[int], *, seed: int = 0, folds: int = BOW_FOLDS) -> np.ndarray:
    """Out-of-fold member probability of a bag-of-words logistic regression (stratified `folds`-fold CV, seeded)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    y = np.asarray(labels, dtype=int)
    folds = min(folds, int(np.bincount(y, minlength=2).min()))
    if folds < 2:
        raise ValueError("a cross-validated classifier needs at least 2 members and 2 non-members")
    clf = make_pipeline(CountVectorizer(tokenizer=WORD.findall, lowercase=False, token_pattern=None, min_df=2),
                        LogisticRegression(C=1.0, max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(clf, list(texts), y, cv=cv, method="predict_proba")[:, 1]


def blind_scores(texts: Sequence[str], labels: Sequence[int], *, token_ids: Sequence[Sequence[int]] | None = None,
                 reference_ids: Sequence[Sequence[int]] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Every baseline's per-sample scores that the inputs allow (token-based ones need `token_ids`, reference-based
    ones also `reference_ids`, the tokenized reference split; `bow_cv` needs 2 members and 2 non-members and a word
    that occurs twice)."""
    out: dict[str, np.ndarray] = {"length_chars": length_chars(texts), "zlib_ratio": zlib_ratio(texts)}
    if token_ids is not None:
        out["chars_per_token"] = chars_per_token(texts, token_ids)
        if reference_ids:
            counts = reference_counts(reference_ids)
            out["rare_ref_share"] = rare_ref_share(token_ids, counts)
            out["unseen_ref_token"] = unseen_ref_token(token_ids, counts)
    if int(np.bincount(np.asarray(labels, dtype=int), minlength=2).min()) >= 2:  # CV needs 2 of each class
        try:
            out["bow_cv"] = bow_cv(texts, labels, seed=seed)
        except ValueError:  # e.g. no word occurs twice: nothing for the classifier to learn from
            pass
    return out


def blind_aucs(scores: dict[str, np.ndarray], labels: Sequence[int], *, n_resamples: int = 1000,
               seed: int = 0) -> list[BlindAUC]:
    """AUC (members positive) with a 95% bootstrap CI of each baseline's scores."""
    y = np.asarray(labels, dtype=int)
    out = []
    for name, s in scores.items():
        ci = bootstrap_ci(fast_auc, np.asarray(s, dtype=float), y, n_resamples=n_resamples, seed=seed)
        out.append(BlindAUC(name, ci.value, ci.low, ci.high, int(y.sum()), int((1 - y).sum())))
    return out


def beyond_margin(low: float, high: float, margin: float = BLIND_MARGIN) -> bool:
    """True when the whole interval [low, high] lies outside 0.5 ± `margin`."""
    return low > 0.5 + margin or high < 0.5 - margin


def blind_check(rows: Sequence[dict[str, Any]], attack_auc: float | None = None,
                margin: float = BLIND_MARGIN) -> tuple[bool, str]:
    """(passes, reason) of the blind-baseline check on `rows` (`blind_auc` metric dicts with value, ci_low, ci_high,
    labels.baseline): fails if a baseline's whole CI lies beyond 0.5 ± `margin`, or if max(AUC, 1 − AUC) of a
    baseline is ≥ `attack_auc` (when given). No rows: fails ("no blind baselines")."""
    if not rows:
        return False, "no blind baselines were computed for this set"
    for r in rows:
        name = r.get("labels", {}).get("baseline", "?")
        value, low, high = float(r["value"]), r.get("ci_low"), r.get("ci_high")
        if low is not None and high is not None and beyond_margin(float(low), float(high), margin):
            return False, (f"blind baseline {name} separates members from non-members without the model: AUC "
                           f"{value:.3f} [{float(low):.3f}, {float(high):.3f}] lies beyond 0.5 ± {margin}")
        if attack_auc is not None and max(value, 1 - value) >= attack_auc:
            return False, (f"blind baseline {name} (AUC {value:.3f}, either orientation) is at least the attack's AUC "
                           f"{attack_auc:.3f}")
    return True, f"every blind baseline is within 0.5 ± {margin} or its CI reaches it"


def permutation_auc(scores: Sequence[float], labels: Sequence[int], *, seed: int = 0, n_resamples: int = 1000,
                    metric: Callable[[np.ndarray, np.ndarray], float] = fast_auc) -> tuple[float, float, float]:
    """(AUC, CI low, CI high) of `scores` against a seeded random permutation of `labels` (the sanity check)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    perm = np.random.default_rng(seed + 104729).permutation(y)
    ci = bootstrap_ci(metric, s, perm, n_resamples=n_resamples, seed=seed)
    return ci.value, ci.low, ci.high


def reference_training_texts(split: Sequence[Any]) -> list[str]:
    """What a quantrisk reference model trained on, from the target's split manifest (`CodeSample`s): its reference
    split, plus the once-seen filler in the exposure regime (`pretrain_loops`: the reference model sees filler and
    reference split once)."""
    return [s.text for s in split if s.split in ("reference", "filler")]


def blind_rows(texts: Sequence[str], labels: Sequence[int], base_labels: dict[str, str], *,
               token_ids: Sequence[Sequence[int]] | None = None, reference_ids: Sequence[Sequence[int]] | None = None,
               n_resamples: int = 1000, seed: int = 0) -> list[Any]:
    """The `blind_auc` metric rows (value = raw AUC, members positive; 95% bootstrap CI) of every baseline the
    inputs allow, labelled `base_labels` + baseline."""
    from quantrisk.results import MetricRow

    scores = blind_scores(texts, labels, token_ids=token_ids, reference_ids=reference_ids, seed=seed)
    return [MetricRow("blind_auc", b.auc, {**base_labels, "baseline": b.baseline}, b.low, b.high)
            for b in blind_aucs(scores, labels, n_resamples=n_resamples, seed=seed)]
