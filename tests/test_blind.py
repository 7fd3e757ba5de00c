"""Blind (model-free) baselines, the label-permutation check, near-duplicate filtering, the held-out NLL's CI, and
the exposure testbed they guard: its tokenizer never sees a member, and its blind AUCs stay within the margin."""

from __future__ import annotations

import zlib
from collections import Counter

import numpy as np
import pytest

from quantrisk.data.corpus import CodeSample
from quantrisk.data.dedup import near_duplicates, ngrams, overlap
from quantrisk.privacy.blind import (
    BLIND_MARGIN,
    beyond_margin,
    blind_aucs,
    blind_check,
    blind_scores,
    bow_cv,
    chars_per_token,
    length_chars,
    permutation_auc,
    rare_ref_share,
    unseen_ref_token,
    zlib_ratio,
)
from quantrisk.privacy.members import NEAR_DUPLICATE, MISample, build_mi_set
from quantrisk.privacy.quality import nll_ci

FUNC = "def f(a, b):\n    total = a + b\n    for i in range(10):\n        total = total * i - a\n    return total\n"


def test_model_free_scores_known_answers():
    texts = ["abcd", "aaaaaaaaaa"]
    assert length_chars(texts).tolist() == [4, 10]
    assert zlib_ratio(texts).tolist() == [len(zlib.compress(t.encode(), 9)) / len(t) for t in texts]
    assert chars_per_token(texts, [[1, 2], [1, 2, 3, 4, 5]]).tolist() == [2.0, 2.0]
    counts = Counter({1: 5, 2: 2, 3: 1})  # token 4 never occurs in the reference split
    ids = [[1, 1, 2, 3], [1, 4]]
    assert rare_ref_share(ids, counts).tolist() == [0.5, 0.5]  # counts <= 2: tokens 2, 3 | token 4
    assert unseen_ref_token(ids, counts).tolist() == [0.0, 1.0]


def test_blind_aucs_see_a_planted_signal_and_not_noise():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(words, 30)) for _ in range(200)]
    y = [1] * 100 + [0] * 100
    planted = [t + (" secret_marker" if label else "") for t, label in zip(texts, y, strict=True)]
    assert fast_auc_of(bow_cv(planted, y), y) > 0.95          # a word only members have
    null = {b.baseline: b for b in blind_aucs(blind_scores(texts, y), y)}
    assert set(null) == {"length_chars", "zlib_ratio", "bow_cv"}  # no tokenizer given: no token baselines
    assert all(not beyond_margin(b.low, b.high) for b in null.values())
    assert all(b.low <= b.auc <= b.high for b in null.values())
    longer = [t + " x" * 20 * label for t, label in zip(texts, y, strict=True)]
    assert {b.baseline: b for b in blind_aucs(blind_scores(longer, y), y)}["length_chars"].auc == 1.0


def fast_auc_of(scores, y) -> float:
    from quantrisk.stats import roc_auc

    return roc_auc(scores, y)


def test_blind_check_rule():
    def row(v, lo, hi, name="length_chars"):
        return {"name": "blind_auc", "value": v, "ci_low": lo, "ci_high": hi, "labels": {"baseline": name}}

    assert BLIND_MARGIN == 0.05
    assert blind_check([row(0.56, 0.51, 0.62)], attack_auc=0.7)[0]          # CI reaches into 0.5 ± 0.05
    ok, why = blind_check([row(0.60, 0.557, 0.655, "rare_ref_share")], attack_auc=0.7)
    assert not ok and "rare_ref_share" in why and "beyond" in why           # the old testbed's leak
    assert not blind_check([row(0.40, 0.34, 0.44)])[0]                      # below 0.45 on the whole CI
    ok, why = blind_check([row(0.42, 0.36, 0.47)], attack_auc=0.57)        # flipped, 0.58 >= the attack's 0.57
    assert not ok and "at least the attack" in why
    assert not blind_check([])[0]


def test_permutation_auc_is_near_half_for_a_perfect_attack():
    scores = np.arange(400, dtype=float)
    y = np.array([0] * 200 + [1] * 200)
    assert fast_auc_of(scores, y) == 1.0
    value, low, high = permutation_auc(scores, y, seed=3, n_resamples=200)
    assert abs(value - 0.5) < 0.1 and low < 0.5 < high
    assert permutation_auc(scores, y, seed=3, n_resamples=200) == (value, low, high)  # seeded


def test_ngram_overlap_and_near_duplicates():
    renamed_layout = FUNC.replace("    ", "  ") + "# a comment\n"
    other = "def g(x):\n    return [y ** 2 for y in x if y % 3 == 0 and y > 7 or not x]\n"
    assert overlap(ngrams(renamed_layout), ngrams(FUNC)) == 1.0   # layout and comments do not count
    assert near_duplicates([renamed_layout, other, "x = 1"], [FUNC]) == [0]
    assert ngrams("x = 1") == set()                                 # shorter than 13 tokens: never a duplicate
    members = [MISample("m", FUNC, 1), MISample("m2", other, 1)]
    nonmembers = [MISample("n", renamed_layout, 0), MISample("n2", "def h():\n    return 42\n", 0)]
    s = build_mi_set(members + nonmembers, None, seed=0)
    assert s.skipped[NEAR_DUPLICATE] == 1
    assert [x.id for x in s.samples if x.label == 0] == ["n2"]


def test_exposure_split_drops_nonmembers_that_near_duplicate_training_text():
    from quantrisk.data.corpus import NEAR_DUPLICATE as SPLIT_NEAR_DUPLICATE
    from quantrisk.data.corpus import assign_exposure_splits

    body = [f"def f{i}(a):\n    return a * {i} + {i} - (a // {i + 1}) ** 2 % {i + 7} or [a, {i}]\n" for i in range(40)]
    # 20 near-copies (a different trailing constant) of the first 20 texts
    near = [t.replace("or [a,", "or [a, 0,") for t in body[:20]]
    samples = [CodeSample(f"s{i}", "p", t, str(i)) for i, t in enumerate(body + near)]
    out, dropped = assign_exposure_splits(samples, seed=0, exposures=(1,), per_exposure=5, n_nonmember=5,
                                          n_reference=5)
    train = [x.text for x in out if x.split in ("member", "filler")]
    nonmembers = [x.text for x in out if x.split == "nonmember"]
    assert len(nonmembers) == 5 and near_duplicates(nonmembers, train) == []
    assert dropped[SPLIT_NEAR_DUPLICATE] >= 1


def test_nll_ci_known_answer():
    a, b = np.log([0.5, 0.25]), np.log([0.125])
    q = nll_ci([a, b, np.array([])], n_resamples=500, seed=0)
    assert q.value == pytest.approx(-(np.log(0.5) + np.log(0.25) + np.log(0.125)) / 3)
    assert q.low < q.value < q.high
    # resampling the samples: the extremes are all-a (mean of a) and all-b
    assert q.low >= -a.mean() - 1e-12 and q.high <= -b.mean() + 1e-12
    one = nll_ci([a], n_resamples=500)
    assert one.low == one.value == one.high
    with pytest.raises(ValueError):
        nll_ci([np.array([])])


def test_exposure_tokenizer_is_fitted_without_members_or_nonmembers(monkeypatch, tmp_path):
    """The testbed's tokenizer sees only the filler (before issue 24 it saw members + filler: members then tokenized
    into fewer, member-made tokens, a signal no quantizer can change)."""
    import json

    from quantrisk.models import pretrain as pt
    from quantrisk.models import tokenizer as tk

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"s{i}", "text": f"def f{i}(x):\n    return x + {i} * {i + 1}\n"})
                              + "\n" for i in range(60)))
    seen: list[str] = []
    real = tk.train_tokenizer

    def spy(texts, vocab_size):
        seen.extend(texts)
        return real(texts, vocab_size)

    monkeypatch.setattr(tk, "train_tokenizer", spy)
    s = pt.default_settings("pythia", "tiny", corpus=str(corpus), per_split=10, per_exposure=5, exposures=(1, 2),
                            max_filler=20, vocab_size=300)
    samples, _, _ = pt._exposure_data(s)
    by = {x.text: x.split for x in samples}
    assert seen and {by[t] for t in seen} == {"filler"}
    assert sum(x.split == "filler" for x in samples) == len(seen)


@pytest.mark.parametrize("seed", [0])
def test_demo_testbed_blind_baselines_are_within_the_margin(seed):
    """The demo's exposure testbed (its spec's model with every recipe override it sets, N as the demo draws
    them): every blind baseline passes `blind_check`. On the members + filler tokenizer (before issue 24) rare_ref_share was 0.812 [0.751, 0.867] at seed 0 and failed."""
    import yaml

    from quantrisk.config import builtin_spec_path
    from quantrisk.models.pretrain import _exposure_data, default_settings
    from quantrisk.privacy.blind import blind_rows, reference_training_texts
    from quantrisk.scoring import tokenize
    from quantrisk.spec_studies import RECIPE

    demo = yaml.safe_load(builtin_spec_path("demo").read_text())
    model = demo["models"][0]
    recipe = {k: model[k] for k in RECIPE if k in model}  # every recipe override the demo model sets
    settings = default_settings(model["zoo"], model["size"], seed=seed, exposures=tuple(model["exposures"]), **recipe)
    samples, _, tok = _exposure_data(settings)
    mis = [MISample(x.id, x.text, int(x.split == "member"), x.exposures) for x in samples
           if x.split in ("member", "nonmember")]
    m = build_mi_set(mis, demo["studies"]["privacy"]["n"], seed=seed)
    texts, y = [x.text for x in m.samples], [x.label for x in m.samples]
    rows = blind_rows(texts, y, {"model": "pythia-tiny", "seed": str(seed)}, token_ids=tokenize(tok, texts),
                      reference_ids=tokenize(tok, reference_training_texts(samples)), seed=seed)
    dicts = [{"value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "labels": r.labels} for r in rows]
    assert {r.labels["baseline"] for r in rows} == {"length_chars", "zlib_ratio", "chars_per_token", "rare_ref_share",
                                                    "unseen_ref_token", "bow_cv"}
    ok, why = blind_check(dicts)
    assert ok, why


def test_blind_scores_leave_out_the_classifier_when_it_cannot_be_cross_validated():
    scores = blind_scores(["def a():\n    pass\n", "def b():\n    return 1\n", "x = 2\n"], [1, 0, 0])
    assert set(scores) == {"length_chars", "zlib_ratio"}
