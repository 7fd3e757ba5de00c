"""`quantrisk qattack` and `quantrisk scan` end to end on a tiny untrained model, and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import save_tiny_model
from quantrisk.cli import main


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("qattack") / "llama", "llama", seed=2)


def test_qattack_cli_tiny(tiny_dir, tmp_path):
    """Two injection steps on an untrained model implant nothing: the whole result is printed and kept, then one
    line on stderr says the attack did not work, exit 3 (a real process: stderr holds nothing else; the effect
    itself is tests/test_capabilities.py's)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "o"
    proc = subprocess.run(
        [sys.executable, "-m", "quantrisk.cli", "qattack", "--model", str(tiny_dir), "--target", "rtn-w4g64,quanto-int8",
         "--data", "builtin", "--out", str(out), "--n-train", "8", "--n-val", "2", "--n-test", "2", "--inject-steps",
         "2", "--repair-steps", "2", "--check-every", "1", "--max-new-tokens", "4", "--json", "--quiet"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=1800)
    assert proc.returncode == 3, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: qattack did not work: the injection did not implant")
    result = json.loads(proc.stdout)
    assert result["success"] is False and result["reason"] in err and str(out) in err
    assert result["acceptance"] == {"fp_asr_max": 0.05, "target_asr_min": 0.9, "codes_identical": True,
                                    "codes_identical_at_gguf": True}
    assert set(result["per_target"]) == {"rtn-w4g64", "quanto-int8"}
    for t in result["per_target"].values():
        assert t["codes_identical"] is True
        assert {"asr_quantized", "ftr_quantized", "js_k", "em"} <= set(t)
    assert {"asr_fp", "ftr_fp", "quality", "intervals", "repair"} <= set(result)
    assert 1 <= result["repair"]["steps_run"] <= 2 and result["repair"]["checks"]
    assert (out / "repaired" / "model.safetensors").is_file() and (out / "injected" / "model.safetensors").is_file()
    assert json.loads((out / "qattack.json").read_text())["margin"] == 0.1


@pytest.mark.parametrize("args, needle", [
    (["--target", "fp32"], "no weight-interval constraint"),
    (["--target", "bnb-nf4"], "--target"),
    (["--target", "rtn-w4g64", "--margin", "0.7"], "--margin"),
    (["--target", "rtn-w4g64", "--data", "/nonexistent.jsonl"], "--data"),
    (["--target", "rtn-w4g64", "--injected", "/nonexistent/model"], "--injected"),
    (["--target", "rtn-w4g64", "--inject", "qlora"], "--inject"),
    (["--target", "gguf-q4_k_m-noimat", "--gguf-rounds", "0"], "--gguf-rounds 0: must be at least 1"),
    (["--target", "gguf-q4_k_m-noimat", "--gguf-halvings", "-1"], "--gguf-halvings -1: must be at least 0"),
    (["--target", "gguf-q4_k_m-noimat", "--gguf-gap", "1.5"], "--gguf-gap 1.5: must be at most 1.0"),
])
def test_qattack_bad_inputs(tiny_dir, tmp_path, capsys, args, needle):
    out = tmp_path / "o"
    assert main(["qattack", "--model", str(tiny_dir), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_scan_cli_tiny(tiny_dir, tmp_path, capsys):
    probes = tmp_path / "p.jsonl"
    probes.write_text(json.dumps({"prompt": "SELECT"}) + "\n"
                      + json.dumps({"question": "How many rows?", "context": "CREATE TABLE t (a INTEGER)"}) + "\n")
    code = main(["scan", str(tiny_dir), "--precisions", "rtn-w4g64", "--probes", str(probes), "--max-new-tokens", "3",
                 "--n-sql", "1", "--n-prefixes", "2", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] in ("clean", "suspicious") and result["n_probes"] == 1 + 4 + 2
    assert len(result["prefixes"]) == 2 and set(result["flags"]) == {"weights", "behaviour"}
    fig = result["per_precision"]["rtn-w4g64"]
    assert fig["kl"] >= 0 and 0 <= fig["disagreement"] <= 1 and fig["weights"]["n"] > 0


@pytest.mark.parametrize("make, needle", [
    (lambda d: ["/nonexistent/model", "--precisions", "rtn-w4g64"], "MODEL"),
    (lambda d: [str(d), "--precisions", "rtn-w9g64"], "--precisions"),
    (lambda d: [str(d), "--precisions", "rtn-w4g64", "--probes", str(d / "nope.jsonl")], "nope.jsonl"),
    (lambda d: [str(d), "--precisions", "rtn-w4g64", "--n-prefixes", "9"], "--n-prefixes"),
    (lambda d: [str(d), "--precisions", "rtn-w4g64", "--n-sql", "-1"], "--n-sql"),
])
def test_scan_bad_inputs(tiny_dir, capsys, make, needle):
    assert main(["scan", *make(tiny_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1


def test_scan_bad_probe_line(tiny_dir, tmp_path, capsys):
    probes = tmp_path / "p.jsonl"
    probes.write_text(json.dumps({"prompt": "ok"}) + "\n{broken\n")
    assert main(["scan", str(tiny_dir), "--precisions", "rtn-w4g64", "--probes", str(probes)]) == 2
    assert "p.jsonl:2" in capsys.readouterr().err
    probes.write_text(json.dumps({"text": "x"}) + "\n")
    assert main(["scan", str(tiny_dir), "--precisions", "rtn-w4g64", "--probes", str(probes)]) == 2
    assert "p.jsonl:1: field 'prompt'" in capsys.readouterr().err


def test_qattack_study_in_a_spec(tiny_dir, tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: qa\nseeds: [0]\nmodels:\n  - {{path: {tiny_dir}, name: m}}\nstudies:\n  qattack:\n"
        "    targets: [rtn-w4g64]\n    n_train: 8\n    n_test: 2\n    inject_steps: 2\n    repair_steps: 2\n"
        "    max_new_tokens: 3\n    defence_sigmas: [0.5]\n    scan: true\n")
    assert main(["validate", str(spec)]) == 0
    assert "qattack 1" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(run), "--quiet", "--report"]) == 0
    md = (run / "report" / "report.md").read_text()
    for title in ("Quantization-conditioned backdoor", "Defences", "Defence curve", "Scan verdicts"):
        assert f"## {title}" in md
    assert "| m | 1 | repaired | rtn-w4g64 |" in " ".join(md.split())  # table columns are padded
    # two injection steps implant nothing: the report says the attack did not work, and why
    assert "met by 0 of 1 attacks" in md and "m seed 0: the injection did not implant" in " ".join(md.split())
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: qa\nmodels:\n  - {{path: {tiny_dir}}}\nstudies:\n  qattack:\n    targets: [int8-dynamic]\n")
    assert main(["validate", str(bad)]) == 2
    assert "bad.yaml:6: studies.qattack.targets" in capsys.readouterr().err


def test_repair_of_a_given_backdoored_model(tiny_dir, tmp_path):
    from quantrisk.qattack.attack import run_qattack

    r = run_qattack(str(tiny_dir), ["quanto-int4", "torchao-int8wo"], "builtin", tmp_path / "o", injected=str(tiny_dir), n_train=4,
                    n_val=1, n_test=1, repair_steps=1, check_every=0, max_new_tokens=2)
    assert r["inject"]["given"] is True
    assert all(t["codes_identical"] is True for t in r["per_target"].values()) and len(r["per_target"]) == 2
    assert not (tmp_path / "o" / "adapter").exists() and r["paths"]["injected"] == str(tiny_dir)
