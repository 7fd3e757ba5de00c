"""GGUF + llama.cpp back-end: conversion, llama.cpp quantization, runtime, dequantized path, fidelity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SNIPPET_SOURCE, save_tiny_model

pytest.importorskip("gguf", reason="gguf-py not installed (pip install 'quantrisk[gguf]')")

TEXTS = [SNIPPET_SOURCE[i: i + 400] for i in range(0, 24000, 1000)]


def _runtime() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'quantrisk[gguf]')")


@pytest.fixture(scope="module")
def trained_dirs(tmp_path_factory):
    """Tiny llama and pythia briefly trained on stdlib code (peaked distributions, so quantization shows)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quantrisk.models.zoo import build_config

    root = tmp_path_factory.mktemp("gguf-models")
    out = {}
    for arch in ("llama", "pythia"):
        d = save_tiny_model(root / arch, arch)
        tok = AutoTokenizer.from_pretrained(d)
        # zoo tiny with rows of 256 weights (hidden 256, ffn 512): llama.cpp's k-quant super-block, so the
        # k-quants apply to every Linear (zoo tiny's 128-wide rows fall back to 32-block types)
        cfg = build_config(arch, "tiny", len(tok), bos_token_id=0, eos_token_id=0, pad_token_id=0).to_dict()
        cfg.update(hidden_size=256, intermediate_size=512, num_hidden_layers=2)
        cfg.pop("head_dim", None)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(type(AutoModelForCausalLM.from_pretrained(d).config)(**cfg))
        torch.manual_seed(0)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        ids = [torch.tensor([tok(t).input_ids[:128]]) for t in TEXTS[:12]]
        for _ in range(2):
            for x in ids:
                loss = model(input_ids=x, labels=x).loss
                loss.backward()
                opt.step()
                opt.zero_grad()
        model.save_pretrained(d, safe_serialization=True)
        (d / "calib.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[16:]))
        out[arch] = d
    return out


def _load(d):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(d).eval(), AutoTokenizer.from_pretrained(d)


def _calibration(tok):
    from quantrisk.data.calibration import token_batches

    return token_batches(tok, TEXTS[16:], max_tokens=128)


# ----- precisions -------------------------------------------------------------------------------------
def test_precisions_are_listed_with_their_facts():
    from quantrisk.errors import PrecisionError, UsageError
    from quantrisk.precision import known_precisions, parse_precision, require_lora_base

    names = {p.name for p in known_precisions()}
    for n in ("gguf-q8_0", "gguf-q6_k", "gguf-q5_k_m", "gguf-q4_k_m", "gguf-q3_k_m", "gguf-q2_k", "gguf-iq4_xs"):
        assert n in names
    p = parse_precision("GGUF-Q4_K_M")
    assert (p.backend, p.bits, p.trainable, p.calibrated, p.devices) == ("gguf", 4, False, True, ("cpu",))
    assert parse_precision("gguf-q2_k-dq").devices == ("cpu", "cuda")
    with pytest.raises(PrecisionError, match="GGUF type must be one of"):
        parse_precision("gguf-q9_k")
    with pytest.raises(UsageError, match="llama.cpp"):
        require_lora_base("gguf-q4_k_m")


# ----- conversion ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "pythia"])
def test_fp32_gguf_round_trips_the_weights_and_reorders_them_like_llama_cpp(tmp_path, trained_dirs, arch):
    from quantrisk.models.quantizers import gguf_convert as gc

    model, tok = _load(trained_dirs[arch])
    path = gc.write_gguf(model, tok, tmp_path / "m.gguf")
    assert set(gc.read_tensor_types(path).values()) == {"F32"}
    other = _load(trained_dirs[arch])[0]
    for t in other.state_dict().values():
        t.zero_()
    gc.load_gguf_weights(other, path)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name
    w = np.arange(48.0).reshape(12, 4)  # layout changes are permutations of rows and invert exactly
    assert not np.array_equal(gc.permute_qk(w, 2), w)
    assert np.array_equal(gc.unpermute_qk(gc.permute_qk(w, 2), 2), w)
    assert np.array_equal(gc.join_neox_qkv(gc.split_neox_qkv(w, 2), 2), w)
    assert np.array_equal(gc.split_neox_qkv(w, 2)[:2], w[:2])  # head 0's q rows come first


def test_unsupported_architecture_is_refused(tmp_path, tiny_model_dirs):
    from quantrisk.models.quantizers.gguf_convert import GgufError, write_gguf

    model, tok = _load(tiny_model_dirs["codegen"])
    with pytest.raises(GgufError, match="'codegen'"):
        write_gguf(model, tok, tmp_path / "x.gguf")


def test_llama_cpp_tokenizes_like_the_hf_tokenizer(tmp_path, trained_dirs):
    _runtime()
    import llama_cpp

    from quantrisk.models.quantizers.gguf_convert import write_gguf

    model, tok = _load(trained_dirs["llama"])
    path = write_gguf(model, tok, tmp_path / "m.gguf")
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    for text in TEXTS[:6] + ["x = 1  # über\n\tSELECT 'a';  ", "<|endoftext|>"]:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok(text).input_ids
        assert llm.detokenize(tok(text).input_ids, special=True).decode() == text


# ----- llama.cpp quantization ------------------------------------------------------------------------------
def test_llama_cpp_quantizes_the_tensors_with_its_type_mix(trained_dirs):
    _runtime()
    import shutil

    from quantrisk.models.quantizers.gguf import quantize_to_gguf
    from quantrisk.models.quantizers.gguf_convert import read_tensor_types

    model, tok = _load(trained_dirs["llama"])
    n = sum(p.numel() for p in model.parameters())
    sizes = {}
    for precision, main in (("gguf-q8_0", "Q8_0"), ("gguf-q4_k_m", "Q4_K"), ("gguf-q2_k", "Q2_K")):
        path, info = quantize_to_gguf(model, tok, precision, _calibration(tok))
        try:
            types = read_tensor_types(path)
            assert types["blk.0.attn_norm.weight"] == "F32"
            assert types["blk.1.attn_q.weight"] == main, types
            if precision == "gguf-q4_k_m":  # Q4_K_M: Q6_K for attn_v of use_more_bits layers (the last here), output head
                assert types["blk.1.attn_v.weight"] == "Q6_K" and types["output.weight"] == "Q6_K", types
            assert info["file_bytes"] == path.stat().st_size
            sizes[precision] = info["bits_per_weight"]
        finally:
            shutil.rmtree(path.parent)
    assert 32 > sizes["gguf-q8_0"] > sizes["gguf-q4_k_m"] > sizes["gguf-q2_k"] > 2, sizes
    assert n > 0


def test_importance_matrix_changes_what_llama_cpp_picks(trained_dirs):
    _runtime()
    import shutil

    import gguf

    from quantrisk.models.quantizers.gguf import quantize_to_gguf
    from quantrisk.models.quantizers.gguf_imatrix import importance_matrix

    model, tok = _load(trained_dirs["llama"])
    cal = _calibration(tok)
    imat = importance_matrix(model, cal)
    assert imat["blk.0.attn_q.weight"].shape == (256,) and imat["blk.0.ffn_down.weight"].shape == (512,)
    assert np.all(imat["blk.0.attn_q.weight"] > 0)
    w = model.state_dict()["model.layers.1.mlp.down_proj.weight"].numpy()
    errs = {}
    for label, c in (("imatrix", cal), ("plain", None)):
        path, _ = quantize_to_gguf(model, tok, "gguf-iq4_xs", c)
        t = next(t for t in gguf.GGUFReader(str(path)).tensors if t.name == "blk.1.ffn_down.weight")
        deq = gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape)
        errs[label] = float((((w - deq) ** 2) * imat["blk.1.ffn_down.weight"]).sum())
        shutil.rmtree(path.parent)
    assert errs["imatrix"] < errs["plain"], errs  # the importance-weighted error is what the search minimises


# ----- runtime and dequantized paths ----------------------------------------------------------------------
def test_load_model_runs_on_llama_cpp_and_scores_close_to_fp_at_q8(trained_dirs):
    _runtime()
    from quantrisk.data.calibration import CalibrationSpec
    from quantrisk.models.load import load_model
    from quantrisk.scoring import score_texts

    d = trained_dirs["pythia"]
    cal = CalibrationSpec(str(d / "calib.jsonl"), n=8)
    fp = load_model(d, "fp32")
    rt = load_model(d, "gguf-q8_0", calibration=cal)
    dq = load_model(d, "gguf-q8_0-dq", calibration=cal)
    assert type(rt.model).__name__ == "LlamaCppLM" and "path: runtime" in rt.record.implementation
    assert "path: dequantized" in dq.record.implementation
    assert rt.record.nominal_bytes == rt.model.file_bytes == dq.record.nominal_bytes
    assert rt.record.nominal_bytes < fp.record.fp16_bytes  # 8.5 bits/weight + f32 norms < fp16
    s_fp, s_rt, s_dq = (score_texts(m.model, fp.tokenizer, TEXTS[:6]) for m in (fp, rt, dq))
    for a, b, c in zip(s_fp, s_rt, s_dq, strict=True):
        assert not np.array_equal(a.logprobs, b.logprobs)  # llama.cpp computed it, not torch
        assert np.abs(a.logprobs - b.logprobs).mean() < 0.05
        assert np.abs(a.logprobs - c.logprobs).mean() < 0.05


def test_runtime_greedy_generation_is_llama_cpp_argmax_and_records_payload_mass(trained_dirs):
    _runtime()
    import torch

    from quantrisk.data.calibration import CalibrationSpec
    from quantrisk.models.load import load_model
    from quantrisk.trojan.generate import generate_batch

    d = trained_dirs["llama"]
    rt = load_model(d, "gguf-q8_0", calibration=CalibrationSpec(str(d / "calib.jsonl"), n=4))
    prompts = ["def getsource(object):", "    if isinstance(x, int"]
    gens = generate_batch(rt.model, rt.tokenizer, prompts, max_new_tokens=8, keyword="return")
    for prompt, g in zip(prompts, gens, strict=True):
        ids = rt.tokenizer(prompt).input_ids
        for _ in range(g.steps):  # replay: each step's token is the argmax of llama.cpp's logits
            nxt = int(rt.model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(nxt)
        assert rt.tokenizer.decode(ids[len(rt.tokenizer(prompt).input_ids):]).split("\n", 1)[0].strip() == g.text
        assert len(g.step_masses) == g.steps and all(0 <= m <= 1 for m in g.step_masses)


def test_fidelity_q8_is_far_closer_than_q2(trained_dirs):
    _runtime()
    from quantrisk.models.quantizers.gguf_fidelity import gguf_fidelity

    model, tok = _load(trained_dirs["llama"])
    rows = {p: gguf_fidelity(model, tok, p, TEXTS[:8], calibration=_calibration(tok), max_tokens=96)
            for p in ("gguf-q8_0", "gguf-q2_k")}
    q8, q2 = rows["gguf-q8_0"], rows["gguf-q2_k"]
    assert q8.kl["fp_vs_runtime"] * 5 < q2.kl["fp_vs_runtime"], (q8.kl, q2.kl)
    assert q8.kl["fp_vs_dequantized"] * 5 < q2.kl["fp_vs_dequantized"]
    assert q8.top1["fp_vs_runtime"] > 0.9
    assert q8.kl["fp_vs_runtime"] > 0  # the runtime is not the fp model
    assert q2.nll["runtime"] > q8.nll["runtime"] - 1e-3
    assert q8.bits_per_weight > q2.bits_per_weight
    assert q8.spearman_loss["fp_vs_runtime"] > 0.9
