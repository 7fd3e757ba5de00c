"""The CPU-compiled vocabulary statistics (scoring `compile=True` on CPU) give the eager numbers."""

from __future__ import annotations

import shutil

import pytest
import torch

from quantrisk.vocab_stats import block_stats, vocab_stats


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("gcc") is None,
                    reason="inductor's CPU back-end needs a C++ compiler")
def test_compiled_cpu_matches_eager():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(37, 301, generator=g) * 3
    targets = torch.randint(0, 301, (37,), generator=g)
    want = block_stats(logits.clone(), targets)
    got = vocab_stats(logits.clone(), targets, chunk=16, compile=True)
    for w, x in zip(want, got, strict=True):
        assert torch.allclose(w, x, atol=1e-5, rtol=1e-5)
    lp = torch.log_softmax(logits.double(), -1)  # known answer: the definitions, in float64
    assert torch.allclose(got[0].double(), lp.gather(-1, targets[:, None]).squeeze(-1), atol=1e-4)
    assert torch.allclose(got[1].double(), (lp.exp() * lp).sum(-1), atol=1e-4)
