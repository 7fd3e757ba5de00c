"""Spec validation: every error reported with its file:line and dotted field path; examples validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantrisk.config import builtin_spec_path, load_spec, parse_spec
from quantrisk.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
name: t
models:
  - {zoo: pythia, size: tiny}
precisions: [FP32, int8-dynamic, rtn-w4g64]
studies:
  privacy: {n: 10, completion_n: 0}
"""


def _errors(text: str, **kw) -> str:
    with pytest.raises(UsageError) as exc:
        parse_spec(text, "spec.yaml", **kw)
    return str(exc.value)


def test_good_spec_parses_and_canonicalises_precisions():
    spec = parse_spec(GOOD)
    assert spec.precisions == ["fp32", "int8-dynamic", "rtn-w4g64"]
    assert spec.models[0].label == "pythia-tiny"
    assert spec.studies.privacy.n == 10
    assert spec.executor.kind == "local"
    assert len(spec.sha256()) == 64


def test_every_error_is_listed_with_line_and_path():
    text = """\
name: t
models:
  - {zoo: pythia, size: tiny}
precisions: [fp32, int9-magic]
studies:
  privacy:
    n: 0
    colour: blue
"""
    msg = _errors(text)
    assert "3 errors" in msg
    assert "spec.yaml:4: precisions[1]: unknown precision 'int9-magic'" in msg
    assert "spec.yaml:7: studies.privacy.n: Input should be greater than or equal to 1" in msg
    assert "spec.yaml:8: studies.privacy.colour: unknown field" in msg
    assert "Traceback" not in msg


def test_model_entry_errors():
    msg = _errors("name: t\nmodels:\n  - {zoo: bert}\n  - {path: /x, hub: a/b}\nprecisions: [fp32]\n"
                  "studies: {privacy: {n: 5}}\n")
    assert "models[0]" in msg and "unknown zoo architecture 'bert'" in msg and "pythia" in msg
    assert "models[1]" in msg and "exactly one of zoo / path / hub" in msg


def test_unavailable_precision_on_cpu_spec_is_an_error():
    msg = _errors(GOOD.replace("rtn-w4g64", "bnb-nf4"))
    assert "precisions[2]: bnb-nf4 cannot run on cpu here" in msg


def test_cuda_spec_validates_syntax_without_device_check():
    import torch

    text = GOOD.replace("precisions: [FP32, int8-dynamic, rtn-w4g64]", "device: cuda\nprecisions: [bf16, bnb-nf4]")
    spec = parse_spec(text)
    assert spec.device == "cuda"
    if not torch.cuda.is_available():
        assert "no CUDA device" in _errors(text, check_device=True)


def test_int8_dynamic_cannot_be_dap1_and_unknown_study_model():
    text = ("name: t\nmodels: [{zoo: llama}]\nstudies:\n  trojan: {dap1: [int8-dynamic], dap2: [fp32], "
            "models: [nope]}\n")
    msg = _errors(text)
    assert "studies.trojan.dap1: DAP1 int8-dynamic cannot be fine-tuned: torch.ao dynamic" in msg


def test_unknown_model_name_in_study():
    msg = _errors("name: t\nmodels: [{zoo: llama}]\nstudies:\n  trojan: {models: [nope]}\n")
    assert "unknown model nope" in msg and "llama-tiny" in msg


def test_empty_grid_and_bad_yaml_and_not_a_mapping(tmp_path):
    assert "grid is empty" in _errors("name: t\n")
    bad = _errors("name: t\nmodels: [\n  {zoo: x\n")
    assert bad.startswith("spec spec.yaml:") and "not valid YAML" in bad
    assert "expected a mapping" in _errors("- 1\n- 2\n")
    assert "does not exist" in str(pytest.raises(UsageError, load_spec, tmp_path / "none.yaml").value)
    f = tmp_path / "latin.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    assert "not UTF-8" in str(pytest.raises(UsageError, load_spec, f).value)


def test_duplicate_precisions_and_seeds():
    msg = _errors(GOOD.replace("rtn-w4g64]", "fp32]").replace("name: t", "name: t\nseeds: [1, 1]"))
    assert "precision listed twice: fp32" in msg
    assert "seeds: " in msg and "distinct" in msg


@pytest.mark.parametrize("name", ["demo.yaml", "paper-privacy.yaml", "paper-trojan.yaml", "gpu-testbed.yaml"])
def test_examples_validate(name):
    spec = load_spec(ROOT / "examples" / name)
    assert spec.name


def test_builtin_demo_is_the_example():
    assert builtin_spec_path("demo").read_text() == (ROOT / "examples" / "demo.yaml").read_text()
    spec = load_spec(builtin_spec_path("demo"))
    # issue 24: 3 seeds (each pretrains, splits and fine-tunes anew) within the budget, paid for with fewer
    # precisions: fp32, an 8-bit and a 4-bit setting (P1) and a 2-bit one
    assert len(spec.seeds) >= 3
    assert len(spec.privacy_precisions()) >= 4 and len(spec.studies.trojan.dap2) >= 4
