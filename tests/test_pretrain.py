"""Pretraining a tiny model: loss goes down, all files are written, they reload, the CLI works."""

from __future__ import annotations

import json

from transformers import AutoModelForCausalLM

from quantrisk.cli import main
from quantrisk.data.corpus import load_split
from quantrisk.models.pretrain import default_settings, ensure_pretrained, pretrain

FAST = {"steps": 30, "per_split": 40, "vocab_size": 512, "batch_size": 8, "seq_len": 128, "warmup": 5}


def test_pretrain_lowers_loss_and_writes_everything(tmp_path):
    report = pretrain("gptneo", "tiny", tmp_path / "m", progress=False, **FAST)
    out = tmp_path / "m"
    for name in ["config.json", "model.safetensors", "tokenizer.json", "split.jsonl", "train_log.jsonl", "pretrain.json"]:
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin"))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] - 1.0
    assert report.member_nll < report.nonmember_nll  # it already fits its members better
    assert AutoModelForCausalLM.from_pretrained(out).config.model_type == "gpt_neo"
    split = load_split(out)
    assert {s.split for s in split} == {"member", "nonmember", "reference"}
    assert sum(s.split == "member" for s in split) == 40
    assert not list(tmp_path.glob(".m.*"))  # no temporary directory left behind


def test_ensure_pretrained_caches_and_builds_the_reference(tmp_path):
    target = ensure_pretrained("llama", "tiny", cache_dir=tmp_path, progress=False, **FAST)
    stamp = (target / "pretrain.json").stat().st_mtime_ns
    assert ensure_pretrained("llama", "tiny", cache_dir=tmp_path, progress=False, **FAST) == target
    assert (target / "pretrain.json").stat().st_mtime_ns == stamp  # reused, not retrained
    ref = ensure_pretrained("llama", "tiny", cache_dir=tmp_path, role="reference", progress=False, **FAST)
    assert ref != target
    assert load_split(ref) == load_split(target)
    assert (ref / "tokenizer.json").read_text() == (target / "tokenizer.json").read_text()
    assert json.loads((ref / "pretrain.json").read_text())["settings"]["train_split"] == "reference"


def test_settings_keys_differ_by_content():
    assert default_settings("llama").key() != default_settings("llama", seed=1).key()
    assert default_settings("llama").key() == default_settings("llama").key()


def test_cli_pretrain_and_bad_arch(tmp_path, capsys):
    rc = main(["pretrain", "--arch", "codegen", "--out", str(tmp_path / "cg"), "--steps", "5", "--per-split", "20",
               "--batch-size", "4", "--quiet", "--json"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert info["settings"]["arch"] == "codegen" and info["n_train_samples"] == 20
    assert main(["pretrain", "--arch", "gpt5", "--out", str(tmp_path / "x")]) == 2
    assert "unknown architecture 'gpt5'" in capsys.readouterr().err
