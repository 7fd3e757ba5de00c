"""Memory fit check (models/fit.py): the estimate's formula on known counts, and up-front refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from benchmarks.scale import config

from quantrisk.errors import ModelLoadError
from quantrisk.models import fit
from quantrisk.precision import parse_precision

# llama-tiny (hidden 64, 2 layers, intermediate 172, vocabulary 512), counted by hand:
Q = 2 * (4 * 64 * 64 + 3 * 64 * 172)  # q, k, v, o + gate, up, down per layer
OTHER = 2 * 512 * 64 + (2 * 2 + 1) * 64  # embedding + output head + 5 RMSNorm weights


def test_parameter_counts_known_answer():
    assert fit.count_params(config("llama-tiny")) == (Q, OTHER)


def test_estimate_known_answer():
    cfg = config("llama-tiny")
    bf16 = fit.estimate(cfg, parse_precision("bf16"), "cpu")
    assert bf16.final_bytes == bf16.peak_bytes == 2 * (Q + OTHER)
    nf4 = fit.estimate(cfg, parse_precision("bnb-nf4"), "cuda")  # 4 bits + one fp32 absmax per 64 weights
    assert nf4.final_bytes == int(Q * (4 + 32 / 64) / 8) + 2 * OTHER
    assert nf4.need_bytes == int(nf4.peak_bytes * fit.SLACK) + fit.RESERVE


@pytest.mark.parametrize("text,value", [("80G", 80 * 2**30), ("512M", 512 * 2**20), ("1.5T", int(1.5 * 2**40)),
                                        ("1000", 1000), ("2GiB", 2 * 2**30)])
def test_parse_bytes(text, value):
    assert fit.parse_bytes(text) == value


def test_parse_bytes_rejects_garbage():
    with pytest.raises(ValueError):
        fit.parse_bytes("lots")


def test_refuses_with_estimate_when_faked_card_is_small(monkeypatch):
    monkeypatch.setenv(fit.ENV, "1M")
    with pytest.raises(ModelLoadError) as exc:
        fit.check_fits(config("llama-tiny"), parse_precision("fp32"), "cpu")
    msg = str(exc.value)
    assert "\n" not in msg and "GiB" in msg and "1.0" in msg and "fp32" in msg


def test_fits_when_memory_is_enough(monkeypatch):
    monkeypatch.setenv(fit.ENV, "4G")
    est = fit.check_fits(config("llama-tiny"), parse_precision("fp32"), "cpu")
    assert est is not None and est.need_bytes < 4 * 2**30


def test_no_check_without_known_memory(monkeypatch):
    monkeypatch.delenv(fit.ENV, raising=False)
    assert fit.check_fits(config("llama-tiny"), parse_precision("fp32"), "cpu") is None


def test_7b_bf16_refused_on_a_12g_card_but_nf4_fits(monkeypatch):
    """The real Llama-2-7B shape: 6.74B parameters: 12.6 GiB of bf16 weights (14.8 GiB with the margin) do not fit 12 GiB; nf4 does."""
    cfg = config("llama-2-7b")
    monkeypatch.setenv(fit.ENV, "12G")
    with pytest.raises(ModelLoadError, match=r"bf16 needs about 14.8 GiB on cpu \(6.74B parameters"):
        fit.check_fits(cfg, parse_precision("bf16"), "cpu")
    assert fit.check_fits(cfg, parse_precision("bnb-nf4"), "cpu") is not None


def test_multi_gpu_refusal_names_the_cards(monkeypatch):
    """Several cards visible: still one card per model (no device_map sharding), and the message says so."""
    monkeypatch.setattr(fit, "device_memory", lambda device: (2**30, 4))
    with pytest.raises(ModelLoadError, match="4 GPUs are visible, but quantrisk runs a model on one card"):
        fit.check_fits(config("llama-2-7b"), parse_precision("bf16"), "cuda")


def test_cli_refuses_up_front_one_line_exit_2(tmp_path):
    """`quantrisk privacy` on a model that does not fit the (faked) device: exit 2, one `error:` line, no results."""
    from benchmarks.scale import build_checkpoint

    model = tmp_path / "m"
    build_checkpoint("llama-tiny", model, "cpu", max_shard_size="200KB")
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps({"text": f"def f{i}(x):\n    return x + {i}\n", "label": i % 2}) + "\n"
                            for i in range(16)))
    out = tmp_path / "out"
    env = {**__import__("os").environ, fit.ENV: "1M"}
    r = subprocess.run([sys.executable, "-m", "quantrisk.cli", "privacy", "--model", str(model), "--data", str(data),
                        "--out", str(out), "--precisions", "fp32", "--n", "8", "--attacks", "loss",
                        "--completion-n", "0", "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "GiB" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (out / "metrics.json").exists()
