"""Loading at every CPU precision on all four tiny architectures; memory; safety; adapters."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from quantrisk.errors import ModelLoadError, UsageError
from quantrisk.models.load import load_model
from quantrisk.models.quantizers.rtn import rtn_quantize
from quantrisk.precision import availability, known_precisions

CPU_PRECISIONS = [p.name for p in known_precisions() if availability(p, "cpu")[0]]
CODE = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n"


def test_cpu_precisions_include_every_cpu_backend():
    assert {"fp32", "bf16", "int8-dynamic", "quanto-int8", "quanto-int4", "quanto-int2", "rtn-w2g64"} <= set(CPU_PRECISIONS)


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in (CODE, CODE.replace("add", "mul"))))
    return path


@pytest.mark.parametrize("arch", ["pythia", "codegen", "gptneo", "llama"])
def test_round_trip_every_cpu_precision(tiny_model_dirs, arch, calibration_file):
    from quantrisk.data.calibration import CalibrationSpec

    for name in CPU_PRECISIONS:
        if name.startswith("gguf-") and arch in ("codegen", "gptneo"):  # no GGUF conversion for these: refused
            with pytest.raises((ModelLoadError, UsageError)):
                load_model(tiny_model_dirs[arch], name, "cpu", calibration=CalibrationSpec(str(calibration_file), 2))
            continue
        lm = load_model(tiny_model_dirs[arch], name, "cpu", calibration=CalibrationSpec(str(calibration_file), 2))
        ids = lm.tokenizer(CODE, return_tensors="pt").input_ids
        with torch.no_grad():
            loss = lm.model(input_ids=ids, labels=ids).loss
        assert torch.isfinite(loss), (arch, name)
        out = lm.model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False,
                                pad_token_id=lm.tokenizer.pad_token_id)
        assert out.shape[1] == ids.shape[1] + 8, (arch, name)
        rec = lm.record
        assert rec.precision == name and rec.device == "cpu" and rec.model_type
        assert rec.weight_bytes > 0 and rec.fp16_bytes > 0 and rec.load_seconds >= 0


def test_weight_bytes_shrink_as_the_bits_say(tiny_model_dirs):
    d = tiny_model_dirs["llama"]
    b = {p: load_model(d, p).record for p in ["fp32", "bf16", "quanto-int8", "quanto-int4", "quanto-int2", "int8-dynamic"]}
    assert b["fp32"].weight_bytes == 2 * b["bf16"].weight_bytes == 2 * b["fp32"].fp16_bytes
    assert b["quanto-int2"].weight_bytes < b["quanto-int4"].weight_bytes < b["quanto-int8"].weight_bytes < b["fp32"].weight_bytes
    assert b["int8-dynamic"].weight_bytes < b["fp32"].weight_bytes
    rtn = {p: load_model(d, p).record for p in ["rtn-w8g128", "rtn-w4g128", "rtn-w2g64"]}
    assert rtn["rtn-w2g64"].nominal_bytes < rtn["rtn-w4g128"].nominal_bytes < rtn["rtn-w8g128"].nominal_bytes
    assert rtn["rtn-w8g128"].weight_bytes == b["fp32"].weight_bytes  # the simulator holds dequantized fp32


def test_rtn_known_answers():
    w = torch.tensor([[0.5, -1.0, 0.25, 0.1]])
    # 2 bits: qmax 1, scale 1.0 -> round(0.5)=0 (half to even), -1, 0, 0
    assert torch.allclose(rtn_quantize(w, 2, 4), torch.tensor([[0.0, -1.0, 0.0, 0.0]]))
    # 3 bits: qmax 3, scale 1/3 -> w/s = 1.5, -3, 0.75, 0.3 -> 2, -3, 1, 0
    assert torch.allclose(rtn_quantize(w, 3, 4), torch.tensor([[2 / 3, -1.0, 1 / 3, 0.0]]))
    # group 2 with a padded last group: [1.0, 0.5] s=1 -> [1, 0]; [-0.2, pad 0] s=0.2 -> [-1]
    assert torch.allclose(rtn_quantize(torch.tensor([[1.0, 0.5, -0.2]]), 2, 2), torch.tensor([[1.0, 0.0, -0.2]]))
    # all-zero groups stay zero; 8 bits is nearly lossless
    assert torch.equal(rtn_quantize(torch.zeros(2, 8), 4, 4), torch.zeros(2, 8))
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    assert (rtn_quantize(x, 8, 64) - x).abs().max() < x.abs().max() / 127


def _train_a_little(model, tok, steps: int = 40):
    import inspect

    text = inspect.getsource(json)
    ids = tok(text, return_tensors="pt").input_ids[:, :2048]
    chunks = ids[0, : (ids.shape[1] // 128) * 128].view(-1, 128)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.requires_grad_(True).train()
    for step in range(steps):
        batch = chunks[step % len(chunks)].unsqueeze(0)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return chunks


def test_nll_drift_grows_as_bits_shrink(tiny_model_dirs, tmp_path):
    """On a (briefly) trained model, 8-bit stays close to fp32 and 2-bit drifts further."""
    base = load_model(tiny_model_dirs["pythia"], "fp32")
    chunks = _train_a_little(base.model, base.tokenizer)
    base.model.save_pretrained(tmp_path / "m")
    base.tokenizer.save_pretrained(tmp_path / "m")
    batch = chunks[:4]

    def nll(p: str) -> float:
        with torch.no_grad():
            return load_model(tmp_path / "m", p).model(input_ids=batch, labels=batch).loss.item()

    ref = nll("fp32")
    drift = {p: abs(nll(p) - ref) for p in ["rtn-w8g128", "quanto-int8", "int8-dynamic", "rtn-w4g128", "rtn-w2g64", "quanto-int2"]}
    for eight in ["rtn-w8g128", "quanto-int8", "int8-dynamic"]:
        assert drift[eight] < 0.05, drift
        assert drift[eight] < drift["rtn-w2g64"] and drift[eight] < drift["quanto-int2"], drift
    assert drift["rtn-w4g128"] < drift["rtn-w2g64"], drift


def test_missing_and_non_model_dirs(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope", "fp32")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path / "empty", "fp32")


def test_pickle_only_checkpoint_refused_unless_opted_in(tiny_model_dirs, tmp_path):
    d = tmp_path / "pickled"
    shutil.copytree(tiny_model_dirs["gptneo"], d)
    model = load_model(d, "fp32").model
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    for f in d.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(d, "fp32")
    lm = load_model(d, "fp32", allow_pickle=True)
    assert lm.record.allow_pickle


def test_remote_code_config_refused(tiny_model_dirs, tmp_path):
    d = tmp_path / "remote"
    shutil.copytree(tiny_model_dirs["llama"], d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="remote code"):
        load_model(d, "fp32")


def test_corrupt_safetensors_is_one_clear_error(tiny_model_dirs, tmp_path):
    d = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dirs["llama"], d)
    (d / "model.safetensors").write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(ModelLoadError, match="could not load"):
        load_model(d, "fp32")


def test_int8_dynamic_cannot_be_a_training_base(tiny_model_dirs):
    with pytest.raises(UsageError, match="int8-dynamic cannot be fine-tuned: .*no autograd kernel"):
        load_model(tiny_model_dirs["llama"], "int8-dynamic", for_training=True)


def test_adapter_is_merged_then_quantized(tiny_model_dirs, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = load_model(tiny_model_dirs["llama"], "fp32").model
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    ids = torch.arange(5, 25).unsqueeze(0)
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = load_model(tiny_model_dirs["llama"], "fp32", adapter=tmp_path / "adapter")
    plain = load_model(tiny_model_dirs["llama"], "fp32")
    with torch.no_grad():
        got = merged.model(input_ids=ids).logits
        without = plain.model(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(without, expected, atol=1e-3)
    quantized = load_model(tiny_model_dirs["llama"], "quanto-int8", adapter=tmp_path / "adapter")
    assert quantized.record.adapter and quantized.record.weight_bytes < merged.record.weight_bytes
    with pytest.raises(ModelLoadError, match="adapter"):
        load_model(tiny_model_dirs["llama"], "fp32", adapter=tmp_path)


def test_offline_hub_id_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="local model directory"):
        load_model("EleutherAI/pythia-160m", "fp32")
