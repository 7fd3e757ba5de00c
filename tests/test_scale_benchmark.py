"""`python -m benchmarks scale` at its smallest configuration on CPU: the checkpoint it builds and the rows."""

from __future__ import annotations

import json

import pytest
from benchmarks import scale
from benchmarks.__main__ import main


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    work = tmp_path_factory.mktemp("scale")
    js = work / "scale.json"
    main(["scale", "--shape", "llama-tiny", "--device", "cpu", "--precisions", "fp32,bnb-nf4", "--repeats", "1",
          "--no-write", "--work", str(work), "--score-n", "6", "--length", "48", "--gen-n", "4", "--gen-batches", "2,4",
          "--max-new-tokens", "4", "--single-n", "2", "--qlora", "fp32", "--qlora-steps", "2", "--qlora-warm", "1",
          "--qlora-batch", "2", "--qlora-len", "96", "--json", str(js)])
    return work, json.loads(js.read_text())


def test_checkpoint_is_sharded_safetensors_with_exact_vocabulary(ran):
    from safetensors import safe_open
    from transformers import AutoTokenizer

    work, _ = ran
    ckpt = work / "llama-tiny"
    shards = sorted(ckpt.glob("*.safetensors"))
    assert len(shards) >= 2 and (ckpt / "model.safetensors.index.json").is_file()
    assert not list(ckpt.glob("*.bin"))
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert len(tok) == scale.SHAPES["llama-tiny"][6]
    text = "def add(a, b):\n    return a + b\n"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    with safe_open(str(shards[0]), "pt") as f:  # random init, not zeros
        t = f.get_tensor(next(iter(f.keys()))).float()
    assert t.std() > 0


def test_every_phase_measured_with_its_anchor(ran):
    _, res = ran
    fp32 = res["precisions"]["fp32"]
    for key in ("load_s", "scoring_tps", "scoring_anchor_tps", "gen_tps_bs2", "gen_tps_bs4", "hf_batched_tps",
                "hf_single_tps", "qlora_tps", "qlora_plain_tps", "qlora_mfu"):
        assert fp32[key] > 0, key
    assert fp32["params"] == res["checkpoint"]["params"]
    assert 0 < fp32["scoring_share"] < 1
    assert "unavailable" in res["precisions"]["bnb-nf4"]  # CUDA-only: a row that says so, not a crash


def test_ratios_check_reads_anchors():
    res = {"precisions": {"a": {"scoring_tps": 2.0, "scoring_anchor_tps": 1.0, "gen_tps_bs4": 3.0,
                                "hf_batched_tps": 4.0}}}
    assert scale.ratios_ok(res) == {"a": False}
    res["precisions"]["a"]["hf_batched_tps"] = 2.0
    assert scale.ratios_ok(res) == {"a": True}
