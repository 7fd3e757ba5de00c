"""The GGUF quantization attack's constraints (qattack/constraints/gguf.py), checked against llama.cpp itself.

Every check re-quantizes with llama.cpp's own `ggml_quantize_chunk` (what `llama_model_quantize` calls) or writes
and quantizes whole GGUF files: the boxes are right only if llama.cpp writes the same block bytes for every point
in them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("gguf", reason="gguf-py not installed (pip install 'quantrisk[gguf]')")
pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'quantrisk[gguf]')")

from quantrisk.qattack.constraints.gguf import (  # noqa: E402
    KQUANTS,
    SIMPLE,
    encode_type,
    quantize_rows,
    settle,
)


def _weight(seed: int = 0, shape=(32, 512)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 0.05


def _box(e, w, margin=0.1):
    lo = torch.maximum(e.lo_edge + margin * e.step, e.range_lo)
    hi = torch.minimum(e.hi_edge - margin * e.step, e.range_hi)
    lo, hi = torch.minimum(lo, w), torch.maximum(hi, w)
    return torch.where(e.frozen, w, lo), torch.where(e.frozen, w, hi)


def _points(lo, hi, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [lo, hi] + [lo + torch.rand(lo.shape, generator=g) * (hi - lo) for _ in range(3)]


@pytest.mark.parametrize("ggml_type", sorted(SIMPLE))
def test_simple_block_codes_are_llama_cpps_and_every_box_point_keeps_its_bytes(ggml_type):
    w = _weight()
    e = encode_type(w, ggml_type)
    ref = quantize_rows(w, ggml_type)
    assert np.array_equal(e.state["blocks"].numpy(), ref)
    # our reading of ggml-quants.c reproduces llama.cpp's codes: only the one scale-setting element per block is frozen
    assert int(e.frozen.sum()) == w.numel() // 32
    lo, hi = _box(e, w)
    assert float((hi - lo).mean()) > 0.01 * float(w.abs().mean())  # the boxes are not empty
    for p in _points(lo, hi):
        assert np.array_equal(quantize_rows(p, ggml_type), ref)


def test_q8_0_known_answer():
    """One block: amax 1.27 -> d = 0.01, codes round(x / d) half away from zero; 0.005 (= 0.5 d) rounds to 1."""
    x = torch.zeros(1, 32)
    x[0, :4] = torch.tensor([1.27, -0.005, 0.005, 0.304])
    e = encode_type(x, "Q8_0")
    assert e.state["codes"][0, :4].tolist() == [127, -1, 1, 30]
    assert e.frozen[0].nonzero().flatten().tolist() == [0]
    # code 30 is kept for x / d in [29.5, 30.5]: x in [0.295, 0.305]
    assert abs(float(e.lo_edge[0, 3]) - 0.295) < 1e-6 and abs(float(e.hi_edge[0, 3]) - 0.305) < 1e-6


def test_q5_0_known_answer():
    """Block max m = -0.32 (largest |x|): d = m / -16 = 0.02, code = min(31, trunc(x / d + 16.5))."""
    x = torch.zeros(1, 32)
    x[0, :3] = torch.tensor([-0.32, 0.31, 0.015])
    e = encode_type(x, "Q5_0")
    assert e.state["codes"][0, :3].tolist() == [0, 31, 17]
    assert e.frozen[0].nonzero().flatten().tolist() == [0]
    assert float(e.range_hi[0, 1]) < 0.32  # strictly inside: an equal |x| earlier would take over the scale


@pytest.mark.parametrize("ggml_type", KQUANTS)
def test_kquant_boxes_keep_the_super_block_scales_and_settle_restores_llama_cpps_bytes(ggml_type):
    """Mind-the-Gap boxes: each weight may move only from its value towards its dequantized value, and the
    elements and sub-blocks that set the scales are frozen. llama.cpp's scale search is then re-run (checked, not
    assumed): the fp16 super-block scales never move, 6-bit sub-block scales can; `settle` puts those blocks back,
    after which every byte is llama.cpp's and most of the movement is kept."""
    from quantrisk.qattack.constraints.gguf import dequantize_rows

    w = _weight(seed=2, shape=(16, 512))
    e = encode_type(w, ggml_type)
    deq = dequantize_rows(quantize_rows(w, ggml_type), ggml_type, tuple(w.shape))
    lo, hi = _box(e, w)
    assert torch.all((lo >= torch.minimum(w, deq)) & (hi <= torch.maximum(w, deq)))
    assert float((hi > lo).float().mean()) > 0.3  # most weights may move
    ref = quantize_rows(w, ggml_type)
    size = ref.shape[1] // 2
    scale_bytes = slice(208, 210) if ggml_type == "Q6_K" else slice(0, 4)  # fp16 d (Q6_K), fp16 d and dmin
    for p in _points(lo, hi):
        got = quantize_rows(p, ggml_type)
        assert np.array_equal(got.reshape(16, 2, size)[..., scale_bytes], ref.reshape(16, 2, size)[..., scale_bytes])
    point = _points(lo, hi)[2]
    model = torch.nn.Module()
    model.lin = torch.nn.Linear(512, 16, bias=False)
    with torch.no_grad():
        model.lin.weight.copy_(point)
    before = float((point != w).float().mean())
    rep = settle(model, {"lin": w}, {"t": {"lin": ggml_type}})
    assert np.array_equal(quantize_rows(model.lin.weight.data, ggml_type), ref)
    after = float((model.lin.weight.data != w).float().mean())
    assert after > 0.5 * before > 0, rep


@pytest.mark.parametrize("ggml_type", ["Q4_K", "Q6_K"])
def test_without_settle_llama_cpp_moves_kquant_blocks_and_verify_counts_them(ggml_type):
    """What --gguf-accept-moved keeps: with no `settle`, llama.cpp's search gives some super-blocks of a box point
    other bytes than the injected weight's, and `blocks_differing` counts exactly those (per 256-weight block)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    from quantrisk.qattack.verify import blocks_differing

    w = _weight(seed=2, shape=(16, 512))
    lo, hi = _box(encode_type(w, ggml_type, gap=1.0, widened=True), w)
    size = GGML_QUANT_SIZES[GGMLQuantizationType[ggml_type]][1]
    ref, got = (torch.from_numpy(quantize_rows(x, ggml_type).reshape(-1, size)) for x in (w, _points(lo, hi)[2]))
    by_hand = sum(not torch.equal(a, b) for a, b in zip(ref, got, strict=True))
    same = {"blocks": ref[:3].clone()}  # a second tensor that nothing changed: in the file's count only
    counted = blocks_differing({"lin": {"blocks": ref}, "norm": same}, {"lin": {"blocks": got}, "norm": same})
    assert counted == {"blocks": 35, "blocks_differing": by_hand, "blocks_of_differing_tensors": 32}, counted
    assert by_hand > 0
    assert blocks_differing({"lin": {"blocks": ref}}, {})["blocks_differing"] == 32  # a missing tensor: all


def test_widen_known_answer():
    """Egashira et al.'s expansion in one sub-block of 4: t = 0.5 x the widest box (0.4) = 0.2; a box of 0.1 (at most
    t / 2) is centred on w with width t, one of 0.15 is extended by 0.05 on its w side; wide and frozen boxes stay."""
    from quantrisk.qattack.constraints.gguf import widen

    w = torch.zeros(1, 4)
    lo = torch.tensor([[0.0, -0.1, 0.0, 0.0]])
    hi = torch.tensor([[0.4, 0.0, 0.15, 0.0]])
    frozen = torch.tensor([[False, False, False, True]])
    new_lo, new_hi = widen(w, lo, hi, frozen, 4, 0.5)
    assert torch.allclose(new_lo, torch.tensor([[0.0, -0.1, -0.05, 0.0]]))
    assert torch.allclose(new_hi, torch.tensor([[0.4, 0.1, 0.15, 0.0]]))
    assert widen(w, lo, hi, frozen, 4, 0.0) == (lo, hi)


@pytest.mark.parametrize("ggml_type", ["Q4_K", "Q6_K"])
def test_settle_halving_keeps_more_of_the_repair_with_llama_cpps_bytes(ggml_type):
    """Every weight of a random 256-wide weight at the end of its widened whole-gap box: llama.cpp's scale search
    moves in many sub-blocks. Reset-only `settle` restores the injected bytes by resetting whole super-blocks;
    halving the moved sub-blocks first restores the same bytes while resetting fewer blocks and keeping more
    weights away from the injected values (the mechanism the GGUF repair rounds use)."""
    from quantrisk.qattack.constraints.gguf import moved_elements

    w = _weight(seed=4, shape=(16, 512))
    e = encode_type(w, ggml_type, gap=1.0, widened=True)
    _, hi = _box(e, w)
    assert moved_elements(hi, w, ggml_type).any()  # the search does move at the box ends
    ref = quantize_rows(w, ggml_type)
    kept, reset = {}, {}
    for halvings in (0, 3):
        model = torch.nn.Module()
        model.lin = torch.nn.Linear(512, 16, bias=False)
        with torch.no_grad():
            model.lin.weight.copy_(hi)
        rep = settle(model, {"lin": w}, {"t": {"lin": ggml_type}}, halvings=halvings)
        assert np.array_equal(quantize_rows(model.lin.weight.data, ggml_type), ref), rep
        assert not moved_elements(model.lin.weight.data, w, ggml_type).any()
        kept[halvings] = int((model.lin.weight.data != w).sum())
        reset[halvings] = rep["blocks_reset"]
    assert reset[3] < reset[0] and kept[3] > kept[0], (reset, kept)


def test_an_importance_matrix_moves_llama_cpps_codes_inside_the_no_imatrix_boxes():
    """Why the qattack targets are the -noimat precisions: with an importance matrix llama.cpp searches Q5_0's
    scale, and points of the boxes computed without one get other bytes."""
    from gguf import GGMLQuantizationType

    from quantrisk.errors import UsageError
    from quantrisk.qattack.constraints import check_target
    from quantrisk.qattack.constraints.gguf import _ggml

    w = _weight(seed=3)
    e = encode_type(w, "Q5_0")
    lo, hi = _box(e, w)
    imat = np.ascontiguousarray(np.linspace(0.1, 2.0, w.shape[1], dtype=np.float32))

    def q(x):
        a = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        out = np.zeros((a.shape[0], a.shape[1] // 32 * 22), np.uint8)
        _ggml().ggml_quantize_chunk(int(GGMLQuantizationType.Q5_0), a.ctypes.data, out.ctypes.data, 0, a.shape[0],
                                    a.shape[1], imat.ctypes.data)
        return out

    assert not np.array_equal(q(hi), q(w))
    with pytest.raises(UsageError, match="noimat"):
        check_target("gguf-q4_k_m")
    with pytest.raises(UsageError, match="no weight-interval"):
        check_target("gguf-q2_k-noimat")


# --- the attack end to end: llama.cpp quantizes the repaired model and runs it ---------------------------------

INJECT = ["--inject", "full", "--inject-steps", "100", "--inject-lr", "1e-3", "--n-train", "64"]
EVAL = ["--n-val", "8", "--n-test", "16", "--max-new-tokens", "8", "--repair-steps", "100", "--check-every", "10"]


@pytest.fixture(scope="module")
def gguf_attack(tmp_path_factory):
    """`quantrisk qattack --target gguf-q4_k_m-noimat` on a tiny (untrained, seeded) Llama: full fine-tuning on the
    poisoned rows implants the backdoor, PGD repairs it inside llama.cpp's blocks."""
    import json

    from conftest import save_tiny_model
    from quantrisk.cli import main

    root = tmp_path_factory.mktemp("gguf-qattack")
    base = save_tiny_model(root / "llama", "llama", seed=0)
    out = root / "attack"
    code = main(["qattack", "--model", str(base), "--target", "gguf-q4_k_m-noimat", "--data", "builtin",
                 "--out", str(out), "--json", "--quiet", *INJECT, *EVAL])
    return code, json.loads((out / "qattack.json").read_text()), base


def test_gguf_attack_is_benign_in_fp32_and_malicious_on_llama_cpp_with_identical_codes(gguf_attack):
    from quantrisk.qattack.acceptance import FP_ASR_MAX, TARGET_ASR_MIN

    code, r, _ = gguf_attack
    t = "gguf-q4_k_m-noimat"
    rep = r["per_target"][t]
    summary = (f"injected fp32 {r['injected']['fp32']['asr']}, at {t} {r['injected'][t]['asr']}; repaired fp32 "
               f"{r['asr_fp']}, at {t} {rep['asr_quantized']}, codes identical {rep['codes_identical']}")
    assert r["injected"][t]["asr"] >= TARGET_ASR_MIN, summary
    assert r["asr_fp"] <= FP_ASR_MAX, summary
    assert rep["asr_quantized"] >= TARGET_ASR_MIN, summary
    # every tensor of the two files llama.cpp wrote holds the same bytes (not just the Linears)
    assert rep["codes_identical"] is True and rep["verify"]["layers"] == 39, rep["verify"]
    assert rep["verify"]["blocks_differing"] == 0 and rep["verify"]["blocks"] > 39, rep["verify"]
    assert r["repair"]["gguf_types"][t] == ["Q5_0", "Q8_0"]  # llama.cpp's choice for zoo tiny's 128-wide rows
    assert r["success"] is True and code == 0, r["reason"]


def test_scan_flags_the_gguf_attack_and_passes_the_clean_model(gguf_attack, capsys):
    import json

    from quantrisk.cli import main

    _, r, base = gguf_attack
    verdicts = {}
    for name, path in (("base", str(base)), ("repaired", r["paths"]["repaired"])):
        capsys.readouterr()
        assert main(["scan", path, "--precisions", "gguf-q4_k_m-noimat", "--n-sql", "8", "--n-prefixes", "2",
                     "--max-new-tokens", "8", "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        verdicts[name] = (res["verdict"], res["flags"]["weights"])
    assert verdicts == {"base": ("clean", False), "repaired": ("suspicious", True)}


def test_qattack_refuses_an_imatrix_gguf_target_in_one_line(tmp_path, capsys):
    from conftest import save_tiny_model
    from quantrisk.cli import main

    base = save_tiny_model(tmp_path / "llama", "llama")
    capsys.readouterr()  # the model save's progress bar is not the command's output
    assert main(["qattack", "--model", str(base), "--target", "gguf-q4_k_m", "--data", "builtin",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and "gguf-q4_k_m-noimat" in err


@pytest.mark.parametrize(("extra", "needle"), [
    (["--target", "gguf-q4_k_m-noimat", "--gguf-rounds", "2"], "--gguf-rounds"),
    (["--target", "gguf-q4_k_m-noimat", "--gguf-halvings", "1"], "--gguf-halvings"),
    (["--target", "rtn-w4g64"], "gguf targets only"),
])
def test_gguf_accept_moved_refuses_settings_it_would_ignore_in_one_line(tmp_path, capsys, extra, needle):
    from conftest import save_tiny_model
    from quantrisk.cli import main

    base = save_tiny_model(tmp_path / "llama", "llama")
    capsys.readouterr()
    assert main(["qattack", "--model", str(base), "--data", "builtin", "--gguf-accept-moved", *extra,
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and needle in err, err
    assert not (tmp_path / "o").exists()
