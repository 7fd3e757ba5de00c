"""GPU paths of the packed pretraining loop: packed causal attention (plain and GPT-NeoX token-major) under
torch.compile and Liger's fused linear cross-entropy give the same losses as the model's own attention and plain
cross-entropy. Skipped without CUDA."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from quantrisk.models.trainloop import train_packed
from quantrisk.models.zoo import build_model

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bf16 compiled loop)")]


def _losses(**kw: object) -> list[float]:
    tokens = torch.randint(1, 512, (4, 4, 128), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    model = build_model("pythia", "tiny", 512, seed=0).to("cuda")
    stats = train_packed(model, tokens, lr=1e-3, warmup=1, device="cuda", log_every=1, warm_steps=1, **kw)
    assert model.config._attn_implementation == "sdpa"  # restored after training
    return [loss for _, loss in stats.losses]


def test_compiled_packed_causal_attention_trains_like_the_models_own_attention() -> None:
    own = _losses(attention="model")
    packed = _losses(attention="packed-causal")
    assert packed == pytest.approx(own, abs=2e-2)  # bf16 autocast: kernels differ in rounding only


def test_compiled_token_major_neox_attention_trains_like_the_models_own_attention() -> None:
    own = _losses(attention="model")
    major = _losses(attention="packed-causal-token-major")
    assert major == pytest.approx(own, abs=2e-2)


@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None, reason="liger-kernel is not installed")
def test_liger_fused_cross_entropy_gives_the_plain_loss() -> None:
    plain = _losses(attention="packed-causal")
    fused = _losses(attention="packed-causal", loss="liger-fused")
    assert fused == pytest.approx(plain, abs=2e-2)
