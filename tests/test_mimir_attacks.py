"""Known-answer tests for the attacks MIMIR has: DC-PDD, gradient norm, code-aware neighbourhood."""

from __future__ import annotations

import ast
import math

import numpy as np
import pytest

from conftest import make_tokenizer
from quantrisk.privacy.attacks import DCPDD_CAP, AttackInput, dcpdd_score, gradnorm_score, neighbourhood_score
from quantrisk.privacy.neighbours import neighbours, renamable, rename, respace
from quantrisk.scoring import TokenScores


def _scores(ids, probs):
    lp = np.log(np.asarray(probs, dtype=float))
    return TokenScores(np.asarray(ids), lp, np.zeros_like(lp), np.ones_like(lp))


def test_dcpdd_known_answer():
    # scored tokens (positions 2..5): 1, 2, 1, 3 with p = 0.5, 0.2, 0.9, 0.001; first occurrences: 1, 2, 3
    freq = np.full(8, 0.05)
    freq[1], freq[2], freq[3] = 0.99, 0.5, 0.1
    t = _scores([5, 1, 2, 1, 3], [0.5, 0.2, 0.9, 0.001])
    terms = [0.5 * -math.log(0.99), min(0.2 * -math.log(0.5), DCPDD_CAP), 0.001 * -math.log(0.1)]  # 0.00503, cap 0.01, 0.0023
    assert dcpdd_score(AttackInput("x", t, {"token_freq": freq}), 0.2) == pytest.approx(sum(terms) / 3)
    assert DCPDD_CAP == 0.01


def test_token_frequencies_are_laplace_smoothed_counts():
    from quantrisk.privacy.inputs.frequencies import token_frequencies

    tok = make_tokenizer()
    texts = ["def f(x):\n    return x\n", "x = 1\n"]
    f = token_frequencies(tok, texts)
    ids = [i for t in texts for i in tok(t, add_special_tokens=False)["input_ids"]]
    v = len(tok)
    assert f.shape == (v,) and f.sum() == pytest.approx(1.0)
    tid = ids[0]
    assert f[tid] == pytest.approx((ids.count(tid) + 1) / (len(ids) + v))
    unseen = next(i for i in range(v) if i not in ids)
    assert f[unseen] == pytest.approx(1 / (len(ids) + v))


def test_gradient_norm_equals_a_manual_backward_and_is_skipped_for_quantized_weights():
    import torch

    from quantrisk.models.zoo import build_model
    from quantrisk.privacy.inputs import InputContext, InputUnavailable
    from quantrisk.privacy.inputs.gradients import autograd_blocker, loss_gradient_norms
    from quantrisk.privacy.options import PrivacyOptions

    tok = make_tokenizer()
    eos = tok.eos_token_id
    model = build_model("llama", "tiny", len(tok), seed=3, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos).eval()
    ids = [tok("def f(x):\n    return x + 1\n", add_special_tokens=False)["input_ids"], tok("y = 2\n", add_special_tokens=False)["input_ids"]]
    ctx = InputContext(model, tok, "m", [None, None], ids, None, PrivacyOptions())
    got = loss_gradient_norms(ctx)
    x = torch.tensor([ids[0]])
    model.zero_grad()
    model(input_ids=x, labels=x).loss.backward()  # HF's shifted mean NLL: the same loss
    manual = math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters() if p.grad is not None))
    assert got[0] == pytest.approx(manual, rel=1e-4) and got[1] > 0
    assert not any(p.requires_grad is False for p in model.parameters())  # flags restored (all were True)
    assert gradnorm_score(AttackInput("x", _scores([1, 2], [0.5]), {"grad_norm": 2.5}), 0.2) == -2.5
    q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    assert "quantized" in autograd_blocker(q)
    with pytest.raises(InputUnavailable, match="no gradient"):
        loss_gradient_norms(InputContext(q, tok, "m", [None], ids[:1], None, PrivacyOptions()))


CODE = '''def scale(values, factor=2):
    total = 0
    for v in values:
        total += v * factor
    label = f"{total}"
    print(values.count, sep="")
    return total, label
'''


def _shape(src: str) -> str:
    """The AST with every identifier replaced by its order of first appearance (a rename-invariant shape)."""
    tree = ast.parse(src)
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            node.id = names.setdefault(node.id, f"n{len(names)}")
        elif isinstance(node, ast.arg):
            node.arg = names.setdefault(node.arg, f"n{len(names)}")
    return ast.dump(tree)


def test_renames_are_local_and_preserve_the_program():
    # `total` appears in an f-string, `sep` is a keyword argument, `count` an attribute, `scale` the def, print builtin
    assert renamable(CODE) == ["values", "factor", "v", "label"]  # not total (f-string)
    new = rename(CODE, "values", "item")
    assert "def scale(item, factor=2)" in new and "item.count" in new and "values" not in new
    assert _shape(new) == _shape(CODE) and new != CODE
    assert rename("s = 'v'  # v\nv = 1\n", "v", "w") == "s = 'v'  # v\nw = 1\n"  # strings and comments untouched
    spaced = respace(CODE)
    assert spaced != CODE and ast.dump(ast.parse(spaced)) == ast.dump(ast.parse(CODE))


def test_neighbours_are_deterministic_distinct_and_equivalent():
    a, b = neighbours(CODE, 4, seed=1), neighbours(CODE, 4, seed=1)
    assert a == b and len(a) == 4 and len(set(a)) == 4 and CODE not in a
    for n in a:
        assert _shape(n) == _shape(CODE)
    assert renamable("def broken(:\n") == []  # does not parse: no renames
    assert neighbours("x = (1,\n", 4) == []  # does not even tokenize: no neighbour at all
    indented = "    def m(self, x):\n        return x\n"  # a method cut out of its class still parses once dedented
    assert renamable(indented) == ["x"]


def test_neighbourhood_score():
    t = _scores([1, 2, 3], [0.5, 0.5])
    assert neighbourhood_score(AttackInput("x", t, {"neighbours": math.log(0.25)}), 0.2) == pytest.approx(math.log(2))
    assert math.isnan(neighbourhood_score(AttackInput("x", t, {"neighbours": None}), 0.2))
