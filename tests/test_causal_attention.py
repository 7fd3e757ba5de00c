"""Packed causal attention (models/causal_attention.py): exact on unpadded rows, restored afterwards, refused
where a model needs its mask (GPT-Neo's local layers) or does not dispatch through transformers' interface."""

from __future__ import annotations

import pytest
import torch

from quantrisk.models.causal_attention import packed_causal_attention, supports
from quantrisk.models.trainloop import train_packed
from quantrisk.models.zoo import build_model


@pytest.mark.parametrize("arch", ["pythia", "llama"])
def test_packed_causal_attention_gives_the_models_logits_and_restores_its_attention(arch: str) -> None:
    model = build_model(arch, "tiny", 300, seed=0).eval()
    ids = torch.randint(1, 300, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        with packed_causal_attention(model) as switched:
            assert switched and model.config._attn_implementation != "sdpa"
            out = model(input_ids=ids).logits
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_packed_causal_attention_is_not_causal_for_a_future_token_change() -> None:
    model = build_model("pythia", "tiny", 300, seed=0).eval()
    ids = torch.randint(1, 300, (1, 32), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[0, 20] = (changed[0, 20] % 299) + 1
    with torch.no_grad(), packed_causal_attention(model):
        a, b = model(input_ids=ids).logits, model(input_ids=changed).logits
    torch.testing.assert_close(a[0, :20], b[0, :20], rtol=0, atol=1e-6)  # positions before 20 cannot see it
    assert (a[0, 20:] - b[0, 20:]).abs().max() > 1e-3


@pytest.mark.parametrize("arch", ["gptneo", "codegen"])
def test_models_that_need_their_own_attention_are_left_alone(arch: str) -> None:
    model = build_model(arch, "tiny", 300, seed=0)
    before = model.config._attn_implementation
    assert not supports(model)
    with packed_causal_attention(model) as switched:
        assert switched is False and model.config._attn_implementation == before


def test_train_packed_records_the_attention_path_and_matches_the_models_own() -> None:
    tokens = torch.randint(1, 300, (3, 2, 32), generator=torch.Generator().manual_seed(2), dtype=torch.int32)
    runs = {}
    for attention in ("model", "packed-causal"):
        model = build_model("pythia", "tiny", 300, seed=0)
        stats = train_packed(model, tokens, lr=1e-3, warmup=1, attention=attention, log_every=1, warm_steps=0)
        runs[attention] = stats
        assert stats.attention == attention and stats.loss == "cross-entropy"
        assert model.config._attn_implementation == "sdpa"
    for (_, a), (_, b) in zip(runs["model"].losses, runs["packed-causal"].losses, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    neo = train_packed(build_model("gptneo", "tiny", 300, seed=0), tokens, lr=1e-3, warmup=1,
                       attention="packed-causal", warm_steps=0)
    assert neo.attention == "model"
    with pytest.raises(ValueError, match="unknown attention"):
        train_packed(build_model("pythia", "tiny", 300, seed=0), tokens, lr=1e-3, warmup=1, attention="flash")
