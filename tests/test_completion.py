"""Code completion: prompt/reference split, CodeBLEU / exact match / edit similarity known answers,
batched left-padded greedy generation == one prompt at a time."""

from __future__ import annotations

import pytest

from conftest import make_tokenizer
from quantrisk.privacy.completion import (
    CompletionTask,
    codebleu,
    complete,
    make_task,
    score_completion,
    token_budgets,
)

FUNC = "def add(a, b):\n    c = a + b\n    d = c * 2\n    e = d - 1\n    return e\n"


def test_make_task_splits_after_the_header_and_half_the_body():
    t = make_task("f", FUNC)
    # body has 4 lines, share 0.5 -> 2 kept; the prompt stops before its last newline
    assert t.prompt == "def add(a, b):\n    c = a + b\n    d = c * 2"
    assert t.reference == "\n    e = d - 1\n    return e\n"
    assert t.prompt + t.reference == FUNC
    t = make_task("f", FUNC, share=0.25)  # round(1.0) = 1 line kept
    assert t.prompt == "def add(a, b):\n    c = a + b"
    t = make_task("f", FUNC, share=1.0)  # at least one line is left to complete
    assert t.reference == "\n    return e\n"
    multi = "@cache\ndef g(a,\n      b):\n    x = a\n    return x\n"
    assert make_task("g", multi).prompt == "@cache\ndef g(a,\n      b):\n    x = a"
    assert make_task("h", "def h(): return 1\n") is None  # no body lines
    assert make_task("h", "x = 1\ny = 2\n") is None  # no header


def test_scores_known_answers():
    t = CompletionTask("f", "def f(x):\n    y = x", "\n    return y\n")
    perfect = score_completion(t, "\n    return y\n")
    assert perfect.codebleu == pytest.approx(1.0)
    assert perfect.exact_match == 1.0 and perfect.edit_similarity == 1.0
    spaced = score_completion(t, "\n    return  y")  # whitespace-normalised exact match
    assert spaced.exact_match == 1.0
    # Indel distance "abc" -> "abd" is 2 (delete c, insert d) over 6 characters: 1 - 2/6
    t2 = CompletionTask("g", "def g():\n    return 1", "abd")
    assert score_completion(t2, "abc").edit_similarity == pytest.approx(2 / 3)
    assert score_completion(t2, "abc").exact_match == 0.0
    wrong = score_completion(t, "\n    return 0\n")
    assert 0 < wrong.codebleu < 1
    parts = codebleu([FUNC], [FUNC])
    assert parts["codebleu"] == pytest.approx(1.0)
    # CodeBLEU = 0.25 * (ngram + weighted ngram + syntax + dataflow)
    p = codebleu([FUNC], ["def add(a, b):\n    c = a + b\n    return c\n"])
    four = p["ngram_match_score"] + p["weighted_ngram_match_score"] + p["syntax_match_score"] + p["dataflow_match_score"]
    assert p["codebleu"] == pytest.approx(0.25 * four)


def test_batched_left_padded_generation_equals_one_at_a_time():
    from quantrisk.models.zoo import build_model

    tok = make_tokenizer()
    eos = tok.eos_token_id
    model = build_model("llama", "tiny", len(tok), seed=1, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos).eval()
    tasks = [make_task(str(i), f) for i, f in enumerate([
        FUNC,
        "def long_name(values):\n    total = 0\n    for v in values:\n        total += v\n    return total\n",
        "def g(x):\n    if x:\n        return 1\n    return 2\n",
    ])]
    batched = complete(model, tok, tasks, max_new_tokens=6, batch_size=3)
    single = [complete(model, tok, [t], max_new_tokens=6)[0] for t in tasks]
    assert batched == single
    assert tok.padding_side == "right"  # restored
    n_ref = [len(tok(t.reference, add_special_tokens=False)["input_ids"]) for t in tasks]
    assert token_budgets(tok, tasks, 6) == [min(6, n) for n in n_ref]
    assert token_budgets(tok, tasks, 10**6) == n_ref
    assert all(isinstance(c, str) and c for c in batched)
