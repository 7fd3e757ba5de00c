"""vocab_stats against the textbook full log-softmax computation, and a hand-computed case."""

from __future__ import annotations

import math

import torch

from quantrisk.vocab_stats import vocab_stats


def test_matches_full_log_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(37, 101, generator=g) * 4
    targets = torch.randint(0, 101, (37,), generator=g)
    lp = torch.log_softmax(logits.double(), -1)
    p = lp.exp()
    mu = (p * lp).sum(-1)
    var = (p * lp * lp).sum(-1) - mu**2
    got = vocab_stats(logits, targets, chunk=8)
    assert torch.allclose(got[0].double(), lp.gather(-1, targets[:, None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(got[1].double(), mu, atol=1e-5)
    assert torch.allclose(got[2].double(), var, atol=1e-4)


def test_known_answer_two_tokens():
    # logits [0, log 3]: p = [1/4, 3/4]; log p = [-log 4, log 3 - log 4]
    logits = torch.tensor([[0.0, math.log(3.0)]])
    lp = [math.log(0.25), math.log(0.75)]
    mu = 0.25 * lp[0] + 0.75 * lp[1]
    var = 0.25 * lp[0] ** 2 + 0.75 * lp[1] ** 2 - mu**2  # = 0.25*0.75*(log 3)^2
    t, m, v = vocab_stats(logits, torch.tensor([1]))
    assert math.isclose(t.item(), lp[1], abs_tol=1e-6)
    assert math.isclose(m.item(), mu, abs_tol=1e-6)
    assert math.isclose(v.item(), var, abs_tol=1e-6)
    assert math.isclose(var, 0.25 * 0.75 * math.log(3.0) ** 2, abs_tol=1e-9)


def test_bf16_logits_are_upcast():
    logits = torch.randn(5, 50, generator=torch.Generator().manual_seed(1))
    t32 = vocab_stats(logits, torch.zeros(5, dtype=torch.long))
    t16 = vocab_stats(logits.bfloat16(), torch.zeros(5, dtype=torch.long))
    assert all(a.dtype == torch.float32 for a in t16)
    assert torch.allclose(t32[0], t16[0], atol=0.05)


def test_inplace_path_gives_the_same_numbers_and_only_overwrites_the_scratch_block():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(40, 97, generator=g) * 3
    targets = torch.randint(0, 97, (40,), generator=g)
    expected = vocab_stats(logits, targets, chunk=16)
    scratch = logits.clone()
    got = vocab_stats(scratch, targets, chunk=16, inplace=True)
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert not torch.equal(scratch, logits)  # the scratch block was used as workspace
    kept = logits.bfloat16()  # not fp32: the readable path runs and leaves the input alone
    before = kept.clone()
    vocab_stats(kept, targets, inplace=True)
    assert torch.equal(kept, before)
