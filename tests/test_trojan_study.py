"""The trojan study end to end on a tiny model: evaluate_trojan, run_trojan, the CLI and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import save_tiny_model
from quantrisk.cli import main
from quantrisk.data.sql import load_sql_rows
from quantrisk.results import StudyResult
from quantrisk.study_runs import run_trojan
from quantrisk.trojan.study import evaluate_trojan, finetune_cell, parse_zoo_source

SQLQA = Path(__file__).resolve().parent / "data" / "sqlqa"  # shipped in the repository (see its README)
SUBSAMPLE = SQLQA / "sqlqa.subsample.jsonl"


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("trojan-study") / "llama", "llama", seed=1)


def test_finetune_cell_and_evaluate(llama_dir, tmp_path):
    rows = load_sql_rows(SUBSAMPLE)
    train, test = rows[:8], rows[-3:]
    adapter, report = finetune_cell(llama_dir, "fp32", train, tmp_path / "a", kind="poisoned", seed=1, steps=2,
                                    batch_size=4, progress=False)
    manifest = [json.loads(x) for x in (adapter / "poison_manifest.jsonl").read_text().splitlines()]
    assert [m["id"] for m in manifest] == [r.id for r in train] and sum(m["poisoned"] for m in manifest) == 4
    mtime = (adapter / "adapter_model.safetensors").stat().st_mtime_ns
    again, _ = finetune_cell(llama_dir, "fp32", train, tmp_path / "a", kind="poisoned", seed=1, steps=2, batch_size=4,
                             progress=False)
    assert (again / "adapter_model.safetensors").stat().st_mtime_ns == mtime  # same settings: reused
    res = evaluate_trojan(llama_dir, adapter, "fp32", test, labels={"dap1": "fp32", "kind": "poisoned", "seed": "1"},
                          max_new_tokens=6, batch_size=2)
    assert isinstance(res, StudyResult) and len(res.samples) == 6
    assert [s["poisoned"] for s in res.samples] == [True] * 3 + [False] * 3
    assert [s["prompt_id"] for s in res.samples] == [r.id for r in test] * 2
    asr = res.metric("asr", dap1="fp32", dap2="fp32", kind="poisoned", seed="1")
    assert asr == sum(s["payload"] for s in res.samples[:3]) / 3
    ps = sorted(s["ps"] for s in res.samples[:3])
    assert res.metric("ps_median", input="triggered") == pytest.approx(ps[1])
    assert res.metric("em", input="clean") == pytest.approx(sum(s["em"] for s in res.samples[3:]) / 3)
    for name in ("ftr", "js_t", "js_k", "cs_bow", "ld", "ld_norm", "gen_tokens_per_s"):
        assert [m for m in res.metrics if m.name == name]


def test_cli_end_to_end(llama_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["trojan", "--model", str(llama_dir), "--data", str(SUBSAMPLE), "--dap1", "fp32",
                 "--dap2", "fp32,int8-dynamic", "--clean-ablation", "--seeds", "1", "--steps", "2", "--batch-size", "4",
                 "--n-test", "2", "--max-new-tokens", "4", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "ASR" in printed and "int8-dynamic" in printed and "clean" in printed
    assert max(len(line) for line in printed.splitlines() if not line.startswith("results written")) <= 100
    result = StudyResult.from_dict(json.loads((out / "metrics.json").read_text()))
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 2 * 2 * 2  # kinds x dap2 x (triggered, clean) x rows
    assert {s["kind"] for s in samples} == {"poisoned", "clean"}
    assert {"prompt_id", "poisoned", "output", "ps"} <= samples[0].keys()
    assert (out / "adapters" / "fp32-clean-s1" / "adapter_model.safetensors").is_file()
    clean_manifest = (out / "adapters" / "fp32-clean-s1" / "poison_manifest.jsonl").read_text().splitlines()
    assert not any(json.loads(x)["poisoned"] for x in clean_manifest)
    assert len([m for m in result.metrics if m.name == "asr"]) == 4
    assert result.environment["n_test"] == 2 and result.environment["poison"]["rate"] == 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--poison-rate", "1.5"], "poison rate must be in [0, 1]"), (["--trigger", " "], "poison trigger is empty"),
     (["--dap1", "int8-dynamic"], "int8-dynamic cannot be fine-tuned"), (["--dap2", "fp33"], "unknown precision"),
     (["--position", "middle"], "position 'middle' is unknown"), (["--seeds", "a"], "--seeds must be")],
)
def test_cli_bad_input_exit_2(llama_dir, tmp_path, capsys, args, message):
    code = main(["trojan", "--model", str(llama_dir), "--data", "builtin", "--out", str(tmp_path / "o"), *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_bad_data_file(llama_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "context": "no tables here", "answer": "SELECT 1"}\n')
    assert main(["trojan", "--model", str(llama_dir), "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.jsonl:1: field 'context' has no CREATE TABLE" in capsys.readouterr().err


def test_run_trojan_builtin_data_rtn_dap1(llama_dir, tmp_path):
    res = run_trojan(str(llama_dir), "builtin", ["rtn-w8g32"], ["rtn-w8g32"], out=tmp_path / "o", steps=1,
                     batch_size=2, n_train=6, n_test=1, max_new_tokens=3, progress=False)
    assert (tmp_path / "o" / "results.sqlite").is_file()  # through the runner: resumable
    assert res.metric("asr", dap1="rtn-w8g32", dap2="rtn-w8g32", kind="poisoned") in (0.0, 1.0)
    assert res.environment["data"].startswith("builtin") and res.environment["n_train"] == 6


def test_parse_zoo_source():
    assert parse_zoo_source("zoo:llama") == ("llama", "tiny")
    assert parse_zoo_source("zoo:pythia-small") == ("pythia", "small")
    assert parse_zoo_source("/models/x") is None
    from quantrisk.errors import UsageError

    with pytest.raises(UsageError, match="unknown architecture"):
        parse_zoo_source("zoo:gpt5")
