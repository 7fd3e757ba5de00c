"""Code completion: prompt/reference split, CodeBLEU / exact match / edit similarity known answers,
batched left-padded greedy generation == one prompt at a time."""

from __future__ import annotations

import pytest

from conftest import make_tokenizer
from quantrisk.privacy.completion import (
    CompletionTask,
    FunctionEndStop,
    codebleu,
    complete,
    corpus_scores,
    cut_at_function_end,
    def_indent,
    make_task,
    score_completion,
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
    # BLEU needs 4-grams: a 2-token continuation scores < 1 even when equal, whole functions score 1
    assert perfect.codebleu_with_prompt == pytest.approx(1.0) and 0 < perfect.codebleu < 1
    assert perfect.exact_match == 1.0 and perfect.edit_similarity == 1.0
    spaced = score_completion(t, "\n    return  y")  # whitespace-normalised exact match
    assert spaced.exact_match == 1.0
    # Indel distance "abc" -> "abd" is 2 (delete c, insert d) over 6 characters: 1 - 2/6
    t2 = CompletionTask("g", "def g():\n    return 1", "abd")
    assert score_completion(t2, "abc").edit_similarity == pytest.approx(2 / 3)
    assert score_completion(t2, "abc").exact_match == 0.0
    wrong = score_completion(t, "\n    return 0\n")
    assert 0 < wrong.codebleu < 1 and wrong.line_exact_match == 0.0
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
    assert all(isinstance(c, str) and c for c in batched)


def test_codebleu_scores_the_continuation_and_an_empty_one_gets_nothing():
    t = make_task("f", FUNC)
    empty = score_completion(t, "")
    # continuation only: nothing generated, nothing matched (the package alone would give 0.25: dataflow 0 -> 1)
    assert empty.codebleu == 0.0
    # prompt-inclusive: the shared header and half body score high with an empty completion
    assert empty.codebleu_with_prompt > 0.5
    right = score_completion(t, "\n    e = d - 1\n    return e\n")
    assert right.codebleu == pytest.approx(1.0) and right.codebleu_with_prompt == pytest.approx(1.0)
    half = score_completion(t, "\n    e = d - 1\n    return d\n")
    assert 0 < half.codebleu < half.codebleu_with_prompt < 1  # the prompt squeezes the difference
    # references without data flow: data-flow part undefined, the mean of the other three
    p = codebleu(["import os\nimport sys\nimport re\n"], ["import os\nimport sys\nimport re\n"])
    assert p["dataflow_defined"] == 0.0 and p["codebleu"] == pytest.approx(1.0)
    c = corpus_scores([t, t], [empty, right])
    assert set(c) >= {"codebleu", "codebleu_with_prompt", "line_exact_match", "line_edit_similarity", "codebleu_dataflow_match"}
    assert c["line_exact_match"] == 0.5 and c["codebleu_mean_per_sample"] == pytest.approx(0.5)


def test_line_completion_metrics_use_the_first_non_blank_line():
    t = CompletionTask("f", "def f(x):\n    y = x", "\n    z = y + 1\n    return z\n")
    s = score_completion(t, "\n\n    z  =  y + 1\n    return 0\n")
    assert s.line_exact_match == 1.0 and s.line_edit_similarity < 1.0  # tokens equal, characters not
    assert s.exact_match == 0.0
    # "z = y + 2" vs "z = y + 1": Indel distance 2 over 18 characters
    assert score_completion(t, "\n    z = y + 2").line_edit_similarity == pytest.approx(1 - 2 / 18)


def test_cut_at_function_end():
    assert def_indent("def f(x):\n    y = x") == 0
    assert def_indent("class A:\n    @property\n    def f(self):\n        y = 1") == 4
    assert def_indent("    async def g():\n        pass") == 4
    body = "\n    return e\n\ndef other():\n    pass\n"
    assert cut_at_function_end(body, 0) == "\n    return e\n\n"
    assert cut_at_function_end("\n        return 1\n    def g(self):\n", 4) == "\n        return 1\n"
    assert cut_at_function_end("\n    x = 1\n    return x\n", 0) == "\n    x = 1\n    return x\n"  # not ended yet
    assert cut_at_function_end(" + 1\nprint(x)", 0) == " + 1\n"  # the open line is never cut
    assert cut_at_function_end("", 0) == ""


def test_function_end_stop_marks_rows_whose_function_ended():
    import torch

    tok = make_tokenizer()
    ended = tok("\n    return 1\nx = 2", add_special_tokens=False)["input_ids"]
    going = tok("\n    return 1\n    ", add_special_tokens=False)["input_ids"]
    width = max(len(ended), len(going))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    prompt = [7, 8]
    rows = [prompt + ended + [pad] * (width - len(ended)), prompt + going + [pad] * (width - len(going))]
    done = FunctionEndStop(tok, len(prompt), [0, 0])(torch.tensor(rows), None)
    assert done.tolist() == [True, False]


def test_generation_is_cut_at_the_function_end_and_capped():
    from quantrisk.models.zoo import build_model

    tok = make_tokenizer()
    eos = tok.eos_token_id
    model = build_model("llama", "tiny", len(tok), seed=2, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos).eval()
    tasks = [make_task("0", FUNC)]
    out = complete(model, tok, tasks, max_new_tokens=12)[0]
    enc = tok([tasks[0].prompt], return_tensors="pt", add_special_tokens=False)
    free = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=eos, eos_token_id=eos)
    plain = tok.decode(free[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert out == cut_at_function_end(plain, 0)  # the same greedy tokens, cut where the function ends
    assert plain.startswith(out)
