"""Pretraining a tiny model: loss goes down, all files are written, they reload, the CLI works."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM

from quantrisk.cli import main
from quantrisk.data.corpus import load_split
from quantrisk.errors import UsageError
from quantrisk.models.pretrain import default_settings, ensure_pretrained, pretrain
from quantrisk.models.tokenizer import EOS, train_tokenizer

FAST = {"regime": "memorise", "steps": 30, "per_split": 40, "vocab_size": 512, "batch_size": 8, "seq_len": 128, "warmup": 5}
TINY = {"regime": "memorise", "steps": 3, "per_split": 12, "vocab_size": 300, "batch_size": 4, "seq_len": 64, "warmup": 1}

CODE = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n    def norm(self):\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n",
    "for i in range(10):\n\tprint(f'{i:>3}', end='')  # tabs, unicode: é ✓\n",
]


def test_tokenizer_round_trips_code(tmp_path):
    tok = train_tokenizer(CODE * 5, 300)
    assert len(tok) <= 300 and tok.eos_token == tok.pad_token == tok.bos_token == EOS
    for text in CODE + ["x = {'unseen': [1, 2, 3]}\n    \n"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text  # byte-level: exact, whitespace and non-ASCII included
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(CODE[0], add_special_tokens=False)["input_ids"] == tok(CODE[0], add_special_tokens=False)["input_ids"]
    assert again.pad_token_id == again.eos_token_id == tok.convert_tokens_to_ids(EOS)
    with pytest.raises(ValueError, match="no text"):
        train_tokenizer([], 300)


def test_pretrain_lowers_loss_and_writes_everything(tmp_path):
    report = pretrain("gptneo", "tiny", tmp_path / "m", progress=False, **FAST)
    out = tmp_path / "m"
    for name in ["config.json", "model.safetensors", "tokenizer.json", "split.jsonl", "train_log.jsonl", "pretrain.json"]:
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin"))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] - 1.0
    assert report.member_nll < report.nonmember_nll  # it already fits its members better
    assert report.eval_samples == 40 and 0.5 < report.auc_loss <= 1.0
    meta = json.loads((out / "pretrain.json").read_text())
    assert meta["corpus"]["kind"] == "stdlib" and meta["corpus"]["python"] and meta["auc_loss"] == report.auc_loss
    assert AutoModelForCausalLM.from_pretrained(out).config.model_type == "gpt_neo"
    split = load_split(out)
    assert {s.split for s in split} == {"member", "nonmember", "reference"}
    assert sum(s.split == "member" for s in split) == 40
    assert not list(tmp_path.glob(".m.*"))  # no temporary directory left behind


def test_ensure_pretrained_caches_and_builds_the_reference(tmp_path):
    target = ensure_pretrained("llama", "tiny", cache_dir=tmp_path, progress=False, **TINY)
    stamp = (target / "pretrain.json").stat().st_mtime_ns
    assert ensure_pretrained("llama", "tiny", cache_dir=tmp_path, progress=False, **TINY) == target
    assert (target / "pretrain.json").stat().st_mtime_ns == stamp  # reused, not retrained
    ref = ensure_pretrained("llama", "tiny", cache_dir=tmp_path, role="reference", progress=False, **TINY)
    assert ref != target
    assert load_split(ref) == load_split(target)
    assert (ref / "tokenizer.json").read_text() == (target / "tokenizer.json").read_text()
    assert json.loads((ref / "pretrain.json").read_text())["settings"]["train_split"] == "reference"


def test_settings_keys_differ_by_content_and_are_validated():
    assert default_settings("llama").key() != default_settings("llama", seed=1).key()
    assert default_settings("llama").key() == default_settings("llama").key()
    assert default_settings("llama", steps=None) == default_settings("llama")  # None = the size's default
    with pytest.raises(UsageError, match="exceeds the tiny model's context of 512"):
        default_settings("llama", seq_len=4096)
    with pytest.raises(UsageError, match="unknown pretraining setting.*epochs"):
        default_settings("llama", epochs=3)
    with pytest.raises(UsageError, match="steps must be >= 1"):
        default_settings("llama", steps=0)
    with pytest.raises(UsageError, match="unknown unit 'line'"):
        default_settings("llama", unit="line")
    with pytest.raises(UsageError, match="needs tokenizer_from"):
        pretrain("llama", "tiny", "unused", train_split="reference", progress=False)


def test_cli_pretrain_and_bad_arch(tmp_path, capsys):
    rc = main(["pretrain", "--arch", "codegen", "--out", str(tmp_path / "cg"), "--regime", "memorise", "--steps", "3",
               "--per-split", "20",
               "--batch-size", "4", "--vocab-size", "300", "--quiet", "--json"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert info["settings"]["arch"] == "codegen" and info["n_train_samples"] == 20
    assert (tmp_path / "cg" / "model.safetensors").is_file()
    assert main(["pretrain", "--arch", "gpt5", "--out", str(tmp_path / "x")]) == 2
    assert "unknown architecture 'gpt5'" in capsys.readouterr().err
    assert main(["pretrain", "--arch", "llama", "--size", "huge", "--out", str(tmp_path / "x")]) == 2
    assert "unknown model size 'huge'" in capsys.readouterr().err
    assert main(["pretrain", "--arch", "llama", "--role", "reference", "--out", str(tmp_path / "x")]) == 2
    assert "--tokenizer-from" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
