"""GPU paths: bitsandbytes int8/nf4/fp4, bf16 on CUDA, QLoRA base. Skipped without CUDA + bitsandbytes."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from quantrisk.models.load import load_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bitsandbytes runs on GPU)"),
    pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed"),
]

CODE = "def add(a, b):\n    return a + b\n"


@pytest.mark.parametrize("arch", ["pythia", "codegen", "gptneo", "llama"])
def test_bnb_round_trip(tiny_model_dirs, arch):
    fp = load_model(tiny_model_dirs[arch], "bf16", "cuda")
    sizes = {"bf16": fp.record.weight_bytes}
    for name in ["bnb-int8", "bnb-nf4", "bnb-fp4"]:
        lm = load_model(tiny_model_dirs[arch], name, "cuda")
        ids = lm.tokenizer(CODE, return_tensors="pt").input_ids.to("cuda")
        with torch.no_grad():
            loss = lm.model(input_ids=ids, labels=ids).loss
        assert torch.isfinite(loss), (arch, name)
        out = lm.model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False,
                                pad_token_id=lm.tokenizer.pad_token_id)
        assert out.shape[1] == ids.shape[1] + 8
        assert lm.record.library == "bitsandbytes" and lm.record.library_version
        sizes[name] = lm.record.weight_bytes
    assert sizes["bnb-nf4"] < sizes["bnb-int8"] < sizes["bf16"], sizes
    assert sizes["bnb-fp4"] == sizes["bnb-nf4"], sizes


def test_qlora_base_is_trainable(tiny_model_dirs):
    from peft import LoraConfig, get_peft_model

    lm = load_model(tiny_model_dirs["llama"], "bnb-nf4", "cuda", for_training=True)
    model = get_peft_model(lm.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    ids = lm.tokenizer(CODE, return_tensors="pt").input_ids.to("cuda")
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_" in n and p.requires_grad]
    assert grads and all(g is not None for g in grads)
