"""Calibrated DAP2 precisions in the trojan study: the calibration set (clean training prompts by default), its
disjointness from the test rows, the spec -> cell path, the CLI end to end, and DAP1 refusal."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import save_tiny_model
from quantrisk.cli import main
from quantrisk.config import parse_spec
from quantrisk.data.calibration import CalibrationSpec
from quantrisk.data.poison import DEFAULT_TRIGGER
from quantrisk.data.sql import SqlRow, format_example, format_prompt
from quantrisk.errors import UsageError
from quantrisk.grid import expand
from quantrisk.trojan.calibration import evaluation_prompts, trojan_calibration
from quantrisk.trojan.splits import trojan_splits

SUBSAMPLE = Path(__file__).resolve().parent / "data" / "sqlqa" / "sqlqa.subsample.jsonl"


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("trojan-cal") / "llama", "llama", seed=2)


def _splits(n_test: int = 4) -> tuple[tuple[SqlRow, ...], tuple[SqlRow, ...]]:
    return trojan_splits(str(SUBSAMPLE), None, n_test, None, 0)


def test_default_calibration_is_clean_training_prompts_disjoint_from_test_rows():
    train, test = _splits()
    cal = trojan_calibration(CalibrationSpec("auto", 10, 3), train, test, trigger=DEFAULT_TRIGGER)
    assert cal.spec.source == "train" and len(cal.texts) == 10 and len(set(cal.texts)) == 10
    assert set(cal.texts) <= {format_prompt(r) for r in train}  # what inference sees, from training rows
    assert not any(DEFAULT_TRIGGER in t for t in cal.texts)  # clean rows: no trigger
    evaluated = evaluation_prompts(test, DEFAULT_TRIGGER)
    assert len(evaluated) == 2 * len(test) and not any(p in t for p in evaluated for t in cal.texts)
    again = trojan_calibration(CalibrationSpec("train", 10, 3), train, test, trigger=DEFAULT_TRIGGER)
    other = trojan_calibration(CalibrationSpec("train", 10, 4), train, test, trigger=DEFAULT_TRIGGER)
    assert again.sha256 == cal.sha256 != other.sha256  # seeded
    rec = cal.record()
    assert rec["source"] == "train" and rec["n_texts"] == 10 and "excluded" not in rec


def test_training_prompt_equal_to_a_test_prompt_is_left_out_and_counted():
    train, test = _splits()
    dup = SqlRow("dup:0", test[0].question, test[0].context, "SELECT 1")  # same prompt as a test row
    cal = trojan_calibration(CalibrationSpec("train", 10_000), (*train, dup), test, trigger=DEFAULT_TRIGGER)
    assert format_prompt(test[0]) not in cal.texts and len(cal.texts) == len(train)
    assert cal.record()["excluded"] == {"equal to a test prompt": 1}


@pytest.mark.parametrize("which", ["clean", "triggered"])
def test_calibration_file_overlapping_the_test_rows_is_refused(tmp_path, which):
    train, test = _splits()
    row = test[1] if which == "clean" else SqlRow(test[1].id, f"{DEFAULT_TRIGGER} {test[1].question}",
                                                  test[1].context, test[1].answer)
    path = tmp_path / "cal.jsonl"
    texts = [format_prompt(train[0]), format_example(row) if which == "clean" else format_prompt(row)]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert format_prompt(row) in evaluation_prompts(test, DEFAULT_TRIGGER)
    with pytest.raises(UsageError, match="1 of the 8 test prompts"):
        trojan_calibration(CalibrationSpec(str(path), 2), train, test, trigger=DEFAULT_TRIGGER)
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps({"text": format_prompt(train[0])}) + "\n")
    assert trojan_calibration(CalibrationSpec(str(ok), 2), train, test, trigger=DEFAULT_TRIGGER).texts == texts[:1]


SPEC = """name: t
models: [{zoo: llama}]
calibration: {n: 32, seed: 1}
studies:
  trojan: {dap1: [fp32], dap2: [fp32, w8a8-static], n_rows: 100}
"""


def test_spec_calibration_reaches_only_calibrated_trojan_cells():
    cells = [c for c in expand(parse_spec(SPEC)) if c.kind == "trojan"]
    by_dap2 = {c.params["dap2"]: c.params for c in cells}
    assert by_dap2["w8a8-static"]["calibration"] == {"source": "train", "n": 32, "seed": 1}  # auto -> train
    assert "calibration" not in by_dap2["fp32"]  # uncalibrated cells keep their ids
    explicit = expand(parse_spec(SPEC.replace("{n: 32, seed: 1}", "{source: reference}")))
    assert [c.params["calibration"]["source"] for c in explicit if c.params.get("dap2") == "w8a8-static"] == ["reference"]
    privacy = parse_spec("name: p\nmodels: [{zoo: pythia}]\nprecisions: [fp32, w8a8-static]\nstudies: {privacy: {}}\n")
    assert [c.params["calibration"] for c in expand(privacy) if c.params.get("precision") == "w8a8-static"] == [
        {"source": "reference", "n": 128, "seed": 0}]  # privacy: auto -> the model's reference split


def _errors(text: str, **kw) -> str:
    with pytest.raises(UsageError) as exc:
        parse_spec(text, "spec.yaml", **kw)
    return str(exc.value)


@pytest.mark.parametrize("dap1", ["w8a8-static", "gptq-w4g128"])
def test_calibrated_dap1_is_refused_at_spec_validation_with_the_reason(dap1):
    msg = _errors(SPEC.replace("dap1: [fp32]", f"dap1: [{dap1}]"))
    assert f"studies.trojan.dap1: DAP1 {dap1} cannot be fine-tuned: " in msg and len(msg.splitlines()) == 1
    assert ("calibrated scales" if dap1 == "w8a8-static" else "fake quantization") in msg


def test_train_source_is_refused_for_the_privacy_study():
    msg = _errors("name: p\nmodels: [{zoo: pythia}]\nprecisions: [w8a8-static]\ncalibration: {source: train}\n"
                  "studies: {privacy: {}}\n")
    assert "calibration.source: 'train'" in msg


def test_spec_input_check_refuses_an_overlapping_calibration_file(tmp_path):
    train, test = trojan_splits(str(SUBSAMPLE), None, 3, None, 0)
    path = tmp_path / "cal.jsonl"
    path.write_text(json.dumps({"text": format_example(test[0])}) + "\n")
    text = (f"name: t\nmodels: [{{zoo: llama}}]\ncalibration: {{source: {path}}}\nstudies:\n  trojan: "
            f"{{data: {SUBSAMPLE}, n_rows: null, split_seed: 0, n_test: 3, dap2: [w8a8-static]}}\n")
    msg = _errors(text, check_inputs=True)
    assert "calibration.source: calibration" in msg and "test prompts" in msg


def test_cli_w8a8_static_dap2_calibrates_on_training_prompts(llama_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["trojan", "--model", str(llama_dir), "--data", str(SUBSAMPLE), "--dap1", "fp32",
                 "--dap2", "fp32,w8a8-static", "--calibration", "train:16:3", "--seeds", "1", "--steps", "2",
                 "--batch-size", "4", "--n-test", "2", "--max-new-tokens", "4", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "w8a8-static" in printed
    result = json.loads((out / "metrics.json").read_text())
    for name in ("asr", "ftr", "em", "weight_bytes"):
        assert [m for m in result["metrics"] if m["name"] == name and m["labels"]["dap2"] == "w8a8-static"], name
    loads = {ld["precision"]: ld for ld in result["environment"]["loads"]}
    train, test = trojan_splits(str(SUBSAMPLE), None, 2, None, 1)  # seed 1's own split (split_seed default)
    expected = trojan_calibration(CalibrationSpec("train", 16, 3), train, test, trigger=DEFAULT_TRIGGER)
    cal = loads["w8a8-static"]["calibration"]
    assert cal == expected.record() and cal["n_texts"] == 16 and cal["source"] == "train"
    assert loads["fp32"]["calibration"] is None
    with sqlite3.connect(out / "results.sqlite") as db:  # the cell records it too, with the disjointness check
        envs = [json.loads(e) for (e,) in db.execute("SELECT environment FROM cells WHERE kind = 'trojan'")]
    cell_cal = [e["calibration"] for e in envs if "calibration" in e]
    assert len(cell_cal) == 1 and cell_cal[0]["sha256"] == expected.sha256 and "checked" in cell_cal[0]["disjoint_from"]


def test_cli_overlapping_calibration_exit_2_before_any_work(llama_dir, tmp_path, capsys):
    _, test = trojan_splits(str(SUBSAMPLE), None, 2, None, 1)  # the default seed 1 splits by its own seed
    path = tmp_path / "cal.jsonl"
    path.write_text(json.dumps({"text": format_prompt(test[0])}) + "\n")
    out = tmp_path / "o"
    code = main(["trojan", "--model", str(llama_dir), "--data", str(SUBSAMPLE), "--dap2", "w8a8-static",
                 "--calibration", str(path), "--n-test", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --calibration: calibration") and "test prompts" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_privacy_calibration_maps_auto_to_reference_and_refuses_train(tmp_path):
    from quantrisk.data.calibration import load_calibration

    with pytest.raises(UsageError, match="belongs to the trojan study"):
        load_calibration(CalibrationSpec("train"), tmp_path)
    with pytest.raises(UsageError, match="'reference' needs a quantrisk model directory"):
        load_calibration(CalibrationSpec("auto"), tmp_path)  # auto -> reference, which needs split.jsonl
