"""The scoring engine: batched == one-at-a-time, padding sides, known answers vs the model's own loss,
sliding windows, conditioned scoring, quantized and half-precision models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SNIPPET_SOURCE, make_tokenizer
from quantrisk.models.zoo import build_model
from quantrisk.scoring import score_texts, score_token_ids, tokenize

ARCHS = ("pythia", "codegen", "gptneo", "llama")


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    lines = SNIPPET_SOURCE.splitlines(keepends=True)
    # 8 texts of very different lengths (1 to 15 lines, all within the 512-token context) so batches really pad
    return ["".join(lines[100 + 50 * i : 100 + 50 * i + 1 + (i * 9) % 15]) for i in range(8)]


def tiny(arch: str, tok, seed: int = 0):
    eos = tok.eos_token_id
    return build_model(arch, "tiny", len(tok), seed=seed, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos).eval()


def reference_scores(model, ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain full-vocabulary computation of (ℓ, μ, σ²) for one unpadded sequence."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].double(), dim=-1)
    p = logp.exp()
    lp = logp.gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)
    mu = (p * logp).sum(-1)
    var = (p * logp * logp).sum(-1) - mu * mu
    return lp.numpy(), mu.numpy(), var.numpy()


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_equals_one_at_a_time_both_padding_sides(arch, tok, texts):
    model = tiny(arch, tok)
    single = [score_texts(model, tok, [t])[0] for t in texts]
    for side in ("right", "left"):
        batched = score_texts(model, tok, texts, batch_size=5, padding_side=side)
        for a, b in zip(single, batched, strict=True):
            assert np.array_equal(a.token_ids, b.token_ids)
            assert a.logprobs.shape == (len(a.token_ids) - 1,)
            assert np.abs(a.logprobs - b.logprobs).max() < 1e-4, side
            assert np.abs(a.mu - b.mu).max() < 1e-4, side
            assert np.abs(a.var - b.var).max() < 1e-4, side


def test_known_answer_against_the_models_own_loss_and_full_softmax(tok, texts):
    model = tiny("pythia", tok, seed=3)
    ids = tokenize(tok, [texts[5]])[0]
    s = score_token_ids(model, [ids])[0]
    assert s.logprobs.dtype == np.float64 and s.mu.dtype == np.float64
    with torch.no_grad():
        loss = model(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()  # mean NLL over tokens 2..n
    assert -s.logprobs.mean() == pytest.approx(loss, abs=1e-5)
    lp, mu, var = reference_scores(model, ids)
    np.testing.assert_allclose(s.logprobs, lp, atol=1e-4)
    np.testing.assert_allclose(s.mu, mu, atol=1e-4)
    np.testing.assert_allclose(s.var, var, atol=1e-4)
    assert (s.var >= 0).all() and (s.mu <= 0).all()


def test_truncation_and_sliding_window(tok):
    model = tiny("llama", tok)
    ids = tokenize(tok, [SNIPPET_SOURCE[:3000]])[0][:20]
    assert len(ids) == 20
    full = score_token_ids(model, [ids])[0].logprobs
    trunc = score_token_ids(model, [ids], max_length=8)[0]
    assert trunc.n_scored == 7
    np.testing.assert_allclose(trunc.logprobs, full[:7], atol=1e-5)
    # windows of 8, stride 4: [0,8) scores tokens 1..7; [4,12) scores 8..11; [8,16) 12..15; [12,20) 16..19
    slid = score_token_ids(model, [ids], max_length=8, stride=4)[0]
    assert slid.n_scored == 19
    np.testing.assert_allclose(slid.logprobs[:7], full[:7], atol=1e-5)
    window = score_token_ids(model, [ids[4:12]])[0].logprobs  # scores tokens 5..11 of ids
    np.testing.assert_allclose(slid.logprobs[7:11], window[3:7], atol=1e-5)  # tokens 8..11
    window = score_token_ids(model, [ids[12:20]])[0].logprobs
    np.testing.assert_allclose(slid.logprobs[15:19], window[3:7], atol=1e-5)  # tokens 16..19


def test_conditioned_scoring_is_the_tail_of_the_full_sequence(tok, texts):
    model = tiny("gptneo", tok)
    prefix, body = tokenize(tok, [texts[2], texts[4]])
    full = score_token_ids(model, [prefix + body])[0]
    cond = score_token_ids(model, [prefix + body, prefix + body[:5]], score_from=[len(prefix), len(prefix)])
    assert cond[0].n_scored == len(body)
    np.testing.assert_allclose(cond[0].logprobs, full.logprobs[len(prefix) - 1 :], atol=1e-4)
    np.testing.assert_allclose(cond[1].logprobs, full.logprobs[len(prefix) - 1 : len(prefix) + 4], atol=1e-4)


def test_quantized_and_half_precision_models_score(tok, texts):
    from quantrisk.models.load import quantize_model

    base = tiny("pythia", tok)
    ref = score_texts(base, tok, texts[:4])
    for precision in ("int8-dynamic", "quanto-int8", "rtn-w4g32", "bf16"):
        model = quantize_model(tiny("pythia", tok), precision, "cpu")
        out = score_texts(model, tok, texts[:4], batch_size=2)
        for a, b in zip(ref, out, strict=True):
            assert b.logprobs.dtype == np.float64 and np.isfinite(b.logprobs).all() and np.isfinite(b.var).all()
            assert np.abs(a.logprobs - b.logprobs).mean() < 0.5, precision  # close, not equal


def test_bad_inputs(tok):
    model = tiny("llama", tok)
    with pytest.raises(ValueError, match="nothing to score"):
        score_token_ids(model, [[5]])
    with pytest.raises(ValueError, match="padding_side"):
        score_token_ids(model, [[5, 6]], padding_side="middle")
    assert score_texts(model, tok, []) == []
