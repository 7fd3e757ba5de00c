"""Token-major GPT-NeoX attention (models/neox_attention.py): the model's logits and gradients on unpadded rows,
restored afterwards, refused for other architectures, and selectable in the packed training loop."""

from __future__ import annotations

import pytest
import torch

from quantrisk.models.neox_attention import supports, token_major_attention
from quantrisk.models.trainloop import train_packed
from quantrisk.models.zoo import build_model


def _ids(seed: int, shape: tuple[int, int] = (2, 48)) -> torch.Tensor:
    return torch.randint(1, 300, shape, generator=torch.Generator().manual_seed(seed))


def test_token_major_attention_gives_the_models_logits_and_gradients() -> None:
    model = build_model("pythia", "tiny", 300, seed=0)
    ids = _ids(0)
    ref = model(input_ids=ids, labels=ids)
    ref.loss.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    with token_major_attention(model) as switched:
        assert switched
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
    torch.testing.assert_close(out.logits, ref.logits, rtol=0, atol=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_token_major_attention_is_causal_and_restores_the_modules_forward() -> None:
    model = build_model("pythia", "tiny", 300, seed=0).eval()
    ids = _ids(1, (1, 32))
    changed = ids.clone()
    changed[0, 20] = (changed[0, 20] % 299) + 1
    attn = model.gpt_neox.layers[0].attention
    with torch.no_grad(), token_major_attention(model):
        assert "forward" in vars(attn)
        a, b = model(input_ids=ids).logits, model(input_ids=changed).logits
    assert "forward" not in vars(attn)
    torch.testing.assert_close(a[0, :20], b[0, :20], rtol=0, atol=1e-6)  # positions before 20 cannot see it
    assert (a[0, 20:] - b[0, 20:]).abs().max() > 1e-3


def test_generation_with_a_cache_keeps_the_models_own_path() -> None:
    model = build_model("pythia", "tiny", 300, seed=0).eval()
    ids = _ids(2, (1, 12))
    with torch.no_grad():
        ref = model.generate(ids, max_new_tokens=6, do_sample=False)
        with token_major_attention(model):
            out = model.generate(ids, max_new_tokens=6, do_sample=False)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("arch", ["llama", "gptneo", "codegen"])
def test_other_architectures_are_left_alone(arch: str) -> None:
    model = build_model(arch, "tiny", 300, seed=0)
    assert not supports(model)
    with token_major_attention(model) as switched:
        assert switched is False


def test_train_packed_token_major_matches_packed_causal_and_falls_back_elsewhere() -> None:
    tokens = torch.randint(1, 300, (3, 2, 32), generator=torch.Generator().manual_seed(2), dtype=torch.int32)
    runs = {}
    for attention in ("packed-causal", "packed-causal-token-major"):
        stats = train_packed(build_model("pythia", "tiny", 300, seed=0), tokens, lr=1e-3, warmup=1,
                             attention=attention, log_every=1, warm_steps=0)
        assert stats.attention == attention
        runs[attention] = [loss for _, loss in stats.losses]
    assert runs["packed-causal-token-major"] == pytest.approx(runs["packed-causal"], abs=1e-5)
    llama = train_packed(build_model("llama", "tiny", 300, seed=0), tokens, lr=1e-3, warmup=1,
                         attention="packed-causal-token-major", warm_steps=0)
    assert llama.attention == "packed-causal"
    neo = train_packed(build_model("gptneo", "tiny", 300, seed=0), tokens, lr=1e-3, warmup=1,
                       attention="packed-causal-token-major", warm_steps=0)
    assert neo.attention == "model"
