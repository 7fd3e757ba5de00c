"""Back-ends own their facts; torchao, static (calibrated) activation quantization and HQQ on tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from quantrisk.data.calibration import CalibrationSpec, load_calibration
from quantrisk.errors import PrecisionError, UsageError
from quantrisk.models.load import load_model
from quantrisk.models.quantizers import QUANTIZERS, get_quantizer
from quantrisk.precision import availability, parse_precision, require_available, require_lora_base

CODE = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n"
needs_torchao = pytest.mark.skipif(not availability("torchao-int8wo", "cpu")[0],
                                   reason="torchao is not installed (pip install 'torchao>=0.14')")
needs_hqq = pytest.mark.skipif(not availability("hqq-w4g64", "cpu")[0], reason="hqq is not installed (pip install hqq)")


def _nll(lm) -> float:
    ids = lm.tokenizer(CODE, return_tensors="pt").input_ids
    with torch.no_grad():
        return float(lm.model(input_ids=ids, labels=ids).loss)


@pytest.fixture(scope="module")
def calib_file(tmp_path_factory):
    import csv
    import inspect
    import textwrap

    path = tmp_path_factory.mktemp("calib") / "calib.jsonl"
    path.write_text("".join(json.dumps({"text": inspect.getsource(m)[:2000]}) + "\n" for m in (json, csv, textwrap)))
    return path


def test_every_backend_declares_its_facts_and_parses_its_examples():
    for key, q in QUANTIZERS.items():
        assert q.backend == key and q.examples and set(q.devices) <= {"cpu", "cuda"}
        assert q.lora_base or q.lora_reason, key  # a back-end that refuses LoRA says why
        for name in q.examples:
            p = q.parse(name)
            assert p is not None and p.backend == key and p.name == name
            assert p.trainable == q.lora_base and p.calibrated == q.needs_calibration
            assert set(p.devices) <= set(q.devices)
            assert p.library == q.library
        assert q.parse("no-such-precision") is None
    # exactly one back-end owns each example
    for q in QUANTIZERS.values():
        for name in q.examples:
            assert [k for k, other in QUANTIZERS.items() if other.parse(name) is not None] == [q.backend]


def test_missing_library_gives_a_one_line_reason(monkeypatch):
    q = QUANTIZERS["hqq"]
    monkeypatch.setattr(q, "module", "no_such_module_quantrisk")
    ok, why = availability("hqq-w4g64", "cpu")
    assert not ok and why == "hqq is not installed (pip install hqq)"
    with pytest.raises(PrecisionError, match="not available on cpu: hqq is not installed"):
        require_available("hqq-w4g64", "cpu")


def test_gpu_only_precisions_say_so_on_cpu():
    for name in ("torchao-int4wo-g128", "torchao-fp8", "w8a8-static-fp8"):
        ok, why = availability(name, "cpu")
        assert not ok and "cuda only" in why, name


def test_lora_base_is_checked_once_with_the_backends_reason():
    assert require_lora_base("rtn-w4g64").name == "rtn-w4g64"
    for name, words in [("int8-dynamic", "no autograd kernel"), ("hqq-w4g64", "HQQLinear"),
                        ("w8a8-static", "calibrated scales"), ("torchao-int8wo", "tensor subclasses")]:
        with pytest.raises(UsageError, match=f"DAP1 {name} cannot be fine-tuned: .*{words}"):
            require_lora_base(name)


@pytest.mark.parametrize("arch", ["llama", "pythia"])
@needs_torchao
def test_torchao_cpu_precisions_load_and_stay_close(tiny_model_dirs, arch):
    d = tiny_model_dirs[arch]
    ref = load_model(d, "fp32")
    for name in ("torchao-int8wo", "torchao-w8a8"):
        lm = load_model(d, name)
        rec = lm.record
        assert rec.library == "torchao" and rec.library_version and "quantize_(" in rec.implementation
        assert rec.weight_bytes < 0.5 * ref.record.weight_bytes  # int8 linears vs fp32
        assert rec.activations == parse_precision(name).activations
        assert abs(_nll(lm) - _nll(ref)) < 0.05, name
        lm.model.generate(lm.tokenizer(CODE, return_tensors="pt").input_ids, max_new_tokens=3, do_sample=False,
                          pad_token_id=lm.tokenizer.pad_token_id)


def test_int8_dynamic_records_which_implementation_ran(tiny_model_dirs):
    rec = load_model(tiny_model_dirs["llama"], "int8-dynamic").record
    assert rec.implementation.startswith("torch.ao.quantization.quantize_dynamic")
    assert rec.activations == "int8-dynamic" and rec.calibration is None


@needs_torchao
def test_static_scales_are_calibrated_absmax(tiny_model_dirs, calib_file):
    from quantrisk.data.calibration import token_batches
    from quantrisk.models.quantizers.base import quantizable_linears
    from quantrisk.models.quantizers.static import int8_input_scales

    lm = load_model(tiny_model_dirs["llama"], "fp32")
    cal = load_calibration(CalibrationSpec(str(calib_file), 2, 0), None)
    batches = token_batches(lm.tokenizer, cal.texts)
    linears = quantizable_linears(lm.model)
    seen: dict[str, float] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, a, n=n: seen.__setitem__(n, max(seen.get(n, 0.0), float(a[0].abs().max()))))
             for n, m in linears.items()]
    with torch.no_grad():
        for ids in batches:
            lm.model(input_ids=ids)
    for h in hooks:
        h.remove()
    scales = int8_input_scales(lm.model, linears, batches)
    assert set(scales) == set(linears)
    for n, s in scales.items():  # torchao's symmetric int8: s = max|x| / ((127 - (-128)) / 2), checked by hand
        assert float(s) == pytest.approx(seen[n] / 127.5, rel=1e-5), n


@needs_torchao
def test_w8a8_static_on_a_bf16_model_calibrates_without_changing_its_inputs(tiny_model_dirs, calib_file):
    # seen on the H100: the calibration hook returned the observer's float32 copy of each input, which replaced
    # the input of a bf16 model ("mat1 and mat2 must have the same dtype, but got Float and BFloat16")
    from quantrisk.data.calibration import token_batches
    from quantrisk.models.quantizers.static import StaticQuantizer

    lm = load_model(tiny_model_dirs["llama"], "bf16")
    batches = token_batches(lm.tokenizer, load_calibration(CalibrationSpec(str(calib_file), 2, 0), None).texts)
    with torch.no_grad():
        before = lm.model(input_ids=batches[0]).logits
    StaticQuantizer().apply(lm.model, parse_precision("w8a8-static"), "cpu", calibration=batches)
    with torch.no_grad():
        after = lm.model(input_ids=batches[0]).logits
    assert after.dtype == torch.bfloat16 and torch.isfinite(after).all()
    assert 0 < float((after.float() - before.float()).abs().max()) < float(before.float().abs().max())


@needs_torchao
def test_w8a8_static_needs_and_records_calibration(tiny_model_dirs, calib_file):
    d = tiny_model_dirs["llama"]
    with pytest.raises(UsageError, match="calibration source 'reference' needs a quantrisk model directory"):
        load_model(d, "w8a8-static")
    lm = load_model(d, "w8a8-static", calibration=CalibrationSpec(str(calib_file), 2, 1))
    cal = lm.record.calibration
    assert cal["source"] == str(calib_file) and cal["n"] == 2 and cal["n_texts"] == 2 and cal["seed"] == 1
    again = load_model(d, "w8a8-static", calibration=CalibrationSpec(str(calib_file), 2, 1)).record.calibration
    assert again["sha256"] == cal["sha256"]  # same (source, n, seed) -> same texts
    assert load_model(d, "w8a8-static", calibration=CalibrationSpec(str(calib_file), 3)).record.calibration["sha256"] != cal["sha256"]
    assert lm.record.activations == "int8-static" and "Int8Static" in lm.record.implementation
    assert abs(_nll(lm) - _nll(load_model(d, "fp32"))) < 0.1


def test_calibration_parse_and_overlap_check(tmp_path):
    assert CalibrationSpec.parse("reference") == CalibrationSpec("reference", 128, 0)
    assert CalibrationSpec.parse("a/b.jsonl:64:3") == CalibrationSpec("a/b.jsonl", 64, 3)
    assert CalibrationSpec.parse("reference:16") == CalibrationSpec("reference", 16, 0)
    with pytest.raises(UsageError, match="positive"):
        CalibrationSpec.parse("reference:0")
    # a model dir whose split has member / nonmember / reference parts; a calibration file that repeats a member
    from quantrisk.data.corpus import CodeSample, sha256_text, write_split

    texts = {"m1": "def a(): pass", "n1": "def b(): pass", "r1": "def c(): pass", "r2": "def d(): pass"}
    split = {"m1": "member", "n1": "nonmember", "r1": "reference", "r2": "reference"}
    write_split(tmp_path / "split.jsonl", [CodeSample(k, f"{k}.py", t, sha256_text(t), split[k]) for k, t in texts.items()])
    ref = load_calibration(CalibrationSpec("reference", 5), tmp_path)
    assert sorted(ref.texts) == ["def c(): pass", "def d(): pass"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "def x(): pass"}) + "\n" + json.dumps({"text": "def a(): pass"}) + "\n")
    with pytest.raises(UsageError, match="shares 1 samples with the member/non-member parts"):
        load_calibration(CalibrationSpec(str(bad), 2), tmp_path)
    ok = load_calibration(CalibrationSpec(str(bad), 2), None)  # no split to compare against: the caller checks
    with pytest.raises(UsageError, match="shares 1 samples with the evaluation set"):
        ok.check_disjoint(["def a(): pass"], "the evaluation set")
    with pytest.raises(UsageError, match="field 'text'"):
        (tmp_path / "nt.jsonl").write_text('{"code": "x"}\n')
        load_calibration(CalibrationSpec(str(tmp_path / "nt.jsonl")), None)


@needs_hqq
def test_hqq_loads_packs_and_orders_by_bits(tiny_model_dirs):
    d = tiny_model_dirs["llama"]
    ref = load_model(d, "fp32")
    recs = {}
    for name in ("hqq-w8g64", "hqq-w4g64", "hqq-w2g64"):
        lm = load_model(d, name)
        recs[name] = lm.record
        assert lm.record.fp16_bytes == ref.record.fp16_bytes  # logical parameters counted through HQQ's packing
        assert torch.isfinite(torch.tensor(_nll(lm)))
    assert recs["hqq-w2g64"].weight_bytes < recs["hqq-w4g64"].weight_bytes < recs["hqq-w8g64"].weight_bytes
    assert recs["hqq-w8g64"].weight_bytes < ref.record.weight_bytes
    assert abs(_nll(load_model(d, "hqq-w8g64")) - _nll(ref)) < 0.01
    assert get_quantizer("hqq-w4g64").implementation(parse_precision("hqq-w4g64")).startswith("hqq HQQLinear")


def _split_model(tmp_path, tiny_dir):
    """A copy of a tiny model with a quantrisk split.jsonl (member / nonmember / reference parts)."""
    import inspect
    import shutil

    from quantrisk.data.corpus import CodeSample, sha256_text, write_split

    d = tmp_path / "model"
    shutil.copytree(tiny_dir, d)
    funcs = [inspect.getsource(f) for f in (json.dumps, json.loads, shutil.copytree, shutil.rmtree, inspect.getsource,
                                            inspect.signature)]
    parts = ["member", "member", "nonmember", "nonmember", "reference", "reference"]
    write_split(d / "split.jsonl", [CodeSample(f"s{i}", f"s{i}.py", t, sha256_text(t), parts[i]) for i, t in enumerate(funcs)])
    return d, funcs


@needs_torchao
def test_probe_cli_calibrates_on_the_reference_split_and_records_it(tmp_path, tiny_model_dirs, capsys):
    from quantrisk.cli import main

    d, funcs = _split_model(tmp_path, tiny_model_dirs["llama"])
    assert main(["probe", str(d), "-p", "w8a8-static", "--calibration", "reference:1:0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["calibration"]["source"] == "reference" and info["calibration"]["n_texts"] == 1
    assert info["calibration"]["origin"].endswith("split.jsonl") and info["activations"] == "int8-static"
    # a calibration file that repeats a member is refused before anything loads: one line, exit 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": funcs[0]}) + "\n")
    assert main(["probe", str(d), "-p", "w8a8-static", "--calibration", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --calibration: calibration") and "shares 1 samples" in err[0]


@needs_torchao
def test_privacy_cli_refuses_calibration_that_overlaps_the_evaluation_data(tmp_path, tiny_model_dirs, capsys):
    from quantrisk.cli import main

    data = tmp_path / "mi.jsonl"
    rows = [{"text": f"def f{i}(x):\n    return x + {i}\n", "label": i % 2} for i in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    calib = tmp_path / "calib.jsonl"
    calib.write_text(json.dumps({"text": rows[3]["text"]}) + "\n" + json.dumps({"text": "def g():\n    pass\n"}) + "\n")
    out = tmp_path / "out"
    code = main(["privacy", "--model", str(tiny_model_dirs["llama"]), "--data", str(data), "--precisions",
                 "fp32,w8a8-static", "--calibration", str(calib), "--attacks", "loss", "--completion-n", "0", "--n", "all",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "shares 1 samples with the member/non-member evaluation set" in err[0]
    assert not out.exists()


needs_gptq = pytest.mark.skipif(not availability("gptq-w4g64", "cpu")[0],
                                reason=f"gptq back-end unavailable here: {availability('gptq-w4g64', 'cpu')[1]}")


def test_gptq_strings_and_facts():
    p = parse_precision("gptq-w3g128")
    assert (p.backend, p.bits, p.group_size, p.calibrated, p.trainable) == ("gptq", 3, 128, True, False)
    for bad in ("gptq-w5g128", "gptq-w4g12", "gptq-w4g512"):
        with pytest.raises(PrecisionError, match="GPTQ bits must be one of"):
            parse_precision(bad)


@needs_gptq
def test_gptq_calibrates_and_beats_rtn_on_the_calibration_text(tiny_model_dirs, calib_file):
    """GPTQ minimises each layer's output error on the calibration activations, so on the calibration texts
    themselves its NLL drift from fp32 is no larger than round-to-nearest's at the same bits and group."""
    from quantrisk.data.calibration import token_batches

    d = tiny_model_dirs["llama"]
    spec = CalibrationSpec(str(calib_file), 3, 0)
    texts = load_calibration(spec, None).texts

    def nll(lm) -> float:
        with torch.no_grad():
            return sum(float(lm.model(input_ids=ids, labels=ids).loss) for ids in token_batches(lm.tokenizer, texts, 256))

    ref = nll(load_model(d, "fp32"))
    g = load_model(d, "gptq-w2g64", calibration=spec)
    assert g.record.calibration["n_texts"] == 3 and g.record.library == "llmcompressor"
    assert g.record.nominal_bytes < load_model(d, "fp32").record.nominal_bytes / 4
    assert g.record.fp16_bytes == load_model(d, "fp32").record.fp16_bytes  # scales are not model parameters
    assert abs(nll(g) - ref) <= abs(nll(load_model(d, "rtn-w2g64")) - ref)


def test_precisions_cli_lists_the_new_strings_with_availability(capsys):
    from quantrisk.cli import main

    assert main(["precisions", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["precisions"]}
    assert {"torchao-int8wo", "torchao-w8a8", "torchao-int4wo-g128", "torchao-fp8", "w8a8-static", "w8a8-static-fp8",
            "hqq-w4g64", "gptq-w4g128", "int8-dynamic"} <= set(rows)
    assert rows["w8a8-static"]["calibrated"] and rows["w8a8-static"]["activations"] == "int8-static"
    assert not rows["torchao-fp8"]["available"] and "cuda only" in rows["torchao-fp8"]["reason"]
    assert main(["precisions"]) == 0
    out = capsys.readouterr().out
    assert "also valid: rtn-w{2..8}g{16..256}" in out
    # each availability note once, with every precision it applies to (not one repeated line per precision)
    text = " ".join(out.split())
    assert text.count("runs on cuda only, not cpu") == 1 and "torchao-fp8, w8a8-static-fp8: runs on cuda only" in text


def test_spec_calibration_reaches_only_the_calibrated_cells():
    from quantrisk.config import parse_spec
    from quantrisk.grid import expand

    base = "name: c\nmodels: [{zoo: pythia}]\nprecisions: [fp32, w8a8-static]\nstudies:\n  privacy: {n: 10, attacks: [loss]}\n"
    cells = {c.params["precision"]: c for c in expand(parse_spec(base)) if c.kind == "privacy"}
    assert "calibration" not in cells["fp32"].params  # uncalibrated cells keep the ids they had
    assert cells["w8a8-static"].params["calibration"] == {"source": "reference", "n": 128, "seed": 0}
    custom = {c.params["precision"]: c for c in expand(parse_spec(base + "calibration: {n: 32, seed: 5}\n"))
              if c.kind == "privacy"}
    assert custom["w8a8-static"].params["calibration"] == {"source": "reference", "n": 32, "seed": 5}
    assert custom["w8a8-static"].id != cells["w8a8-static"].id and custom["fp32"].id == cells["fp32"].id
    with pytest.raises(UsageError, match="calibration.n"):
        parse_spec(base + "calibration: {n: 0}\n")
