"""The privacy study end to end on a tiny model that memorised its members, and the CLI."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from conftest import make_tokenizer
from quantrisk.cli import main
from quantrisk.data.corpus import CodeSample, sha256_text, write_split

WORDS = ["alpha", "beta", "gamma", "delta", "count", "total", "value", "item", "node", "path", "name", "size",
         "index", "buffer", "result", "offset", "left", "right", "head", "tail"]
N = 12  # members and non-members each


def synth_function(rng: random.Random, i: int) -> str:
    a, b, c = rng.sample(WORDS, 3)
    return (f"def {rng.choice(WORDS)}_{rng.choice(WORDS)}_{i}({a}, {b}):\n"
            f"    {c} = {a} * {rng.randint(2, 99)} + {b}\n"
            f"    if {c} > {rng.randint(100, 999)}:\n"
            f"        return {c} - {a}\n"
            f"    return {c} // {rng.randint(2, 9)}\n")


def train(model, tok, texts: list[str], steps: int, seed: int = 0) -> None:
    """Full-batch Adam on `texts` (the model memorises them)."""
    import torch

    torch.manual_seed(seed)
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(steps):
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module")
def memorised(tmp_path_factory) -> dict[str, Path]:
    """A tiny llama trained on N member functions (+ split.jsonl), and a reference model trained on others."""
    from quantrisk.models.zoo import build_model

    root = tmp_path_factory.mktemp("privacy")
    rng = random.Random(0)
    texts = [synth_function(rng, i) for i in range(3 * N + 4)]
    splits = ["member"] * N + ["nonmember"] * N + ["reference"] * (N + 4)
    rows = [CodeSample(f"s{i:03d}", "synth.py", t, sha256_text(t), sp) for i, (t, sp) in enumerate(zip(texts, splits, strict=True))]
    tok = make_tokenizer()
    eos = tok.eos_token_id
    out = {}
    for role, train_split, steps in (("target", "member", 25), ("reference", "reference", 8)):
        model = build_model("llama", "tiny", len(tok), seed=0, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
        train(model, tok, [r.text for r in rows if r.split == train_split], steps=steps)
        out[role] = root / role
        model.save_pretrained(out[role], safe_serialization=True)
        tok.save_pretrained(out[role])
    write_split(out["target"] / "split.jsonl", rows)
    members = root / "members.jsonl"
    members.write_text("".join(json.dumps({"text": r.text}) + "\n" for r in rows if r.split == "member"), encoding="utf-8")
    out["members"] = members
    return out


def test_privacy_at_precision_detects_memorised_members(memorised):
    from quantrisk.privacy.members import load_mi_set
    from quantrisk.privacy.study import PrivacyOptions, privacy_at_precision

    mi = load_mi_set(memorised["target"], N)
    opts = PrivacyOptions(attacks=("loss", "zlib", "mink", "minkpp", "lowercase", "recall", "reference"),
                          n_resamples=200, completion_n=3, max_new_tokens=8)
    r = privacy_at_precision(memorised["target"], "fp32", samples=mi, options=opts,
                             reference_source=memorised["reference"])
    assert r.metric("auc", attack="loss", precision="fp32") > 0.9
    assert r.metric("auc", attack="reference") > 0.8
    for m in r.metrics:
        assert not math.isnan(m.value)
        if m.name == "auc":
            assert m.ci_low <= m.value <= m.ci_high and {"model", "precision", "attack"} <= set(m.labels)
    auc_attacks = {m.labels["attack"] for m in r.metrics if m.name == "auc"}
    assert auc_attacks == {"loss", "zlib", "mink-0.2", "minkpp-0.2", "lowercase", "recall", "reference"}
    mi_rows = [s for s in r.samples if s["kind"] == "mi"]
    assert len(mi_rows) == 2 * N and sum(s["label"] for s in mi_rows) == N
    assert all(isinstance(s["loss"], float) and s["precision"] == "fp32" for s in mi_rows)
    assert len([s for s in r.samples if s["kind"] == "completion"]) == 3
    assert 0 <= r.metric("codebleu") <= 1
    assert r.metric("weight_mb") > 0 and r.environment["load"]["precision"] == "fp32"


def test_run_privacy_over_precisions_and_correlation(memorised, tmp_path):
    from quantrisk.privacy.study import PrivacyOptions
    from quantrisk.study_runs import run_privacy

    opts = PrivacyOptions(attacks=("loss", "zlib"), n_resamples=100, completion_n=2, max_new_tokens=6)
    r = run_privacy(memorised["target"], ["fp32", "int8-dynamic", "rtn-w2g64"], n=6, options=opts, out=tmp_path / "o")
    precisions = [m.labels["precision"] for m in r.metrics if m.name == "codebleu"]
    assert precisions == ["fp32", "int8-dynamic", "rtn-w2g64"]
    corr = [m for m in r.metrics if m.name in ("pearson_r", "pearson_p", "spearman_r", "spearman_p")]
    assert len(corr) == 4 and all(m.labels["n"] == "3" and m.labels["x"] == "codebleu" for m in corr)
    assert set(r.environment["loads"]) == {"fp32", "int8-dynamic", "rtn-w2g64"}
    assert r.metric("weight_mb", precision="int8-dynamic") < r.metric("weight_mb", precision="fp32")
    assert r.metric("nominal_weight_mb", precision="rtn-w2g64") < r.metric("nominal_weight_mb", precision="int8-dynamic")
    # int8 keeps the model (and its memorisation) nearly intact; 2-bit RTN does not
    fp32 = r.metric("auc", attack="loss", precision="fp32")
    assert r.metric("auc", attack="loss", precision="int8-dynamic") == pytest.approx(fp32, abs=0.1)
    assert r.metric("auc", attack="loss", precision="rtn-w2g64") < fp32
    # paired against fp32 on the same samples: ΔAUC equals the difference of the stored AUCs, p-values Holm-adjusted
    d = r.metric("delta_auc", attack="loss", precision="rtn-w2g64")
    assert d == pytest.approx(r.metric("auc", attack="loss", precision="rtn-w2g64") - fp32)
    assert r.metric("delong_p_holm", attack="loss", precision="rtn-w2g64") >= r.metric("delong_p", attack="loss", precision="rtn-w2g64")
    assert {m.labels["precision"] for m in r.metrics if m.name == "delta_auc"} == {"int8-dynamic", "rtn-w2g64"}


def test_cli_end_to_end(memorised, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["privacy", "--model", str(memorised["target"]), "--precisions", "fp32,int8-dynamic",
                 "--reference", str(memorised["reference"]), "--n", "6", "--attacks", "loss,zlib,reference",
                 "--completion-n", "1", "--max-new-tokens", "4", "--resamples", "50", "--quiet", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "int8-dynamic" in text and "reference" in text and "CodeBLEU" in text
    head = json.loads((out / "metrics.json").read_text())
    assert head["study"] == "privacy" and "quality-risk correlation: needs 3 or more precisions, got 2" in head["skipped"]
    assert "skipped: quality-risk correlation: needs 3 or more precisions, got 2" in text and "(1)" not in text
    assert max(len(line) for line in text.splitlines() if not line.startswith("results written")) <= 100  # 100 columns
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len([x for x in rows if x["kind"] == "mi"]) == 2 * 6 * 2
    code = main(["privacy", "--model", str(memorised["target"]), "--precisions", "fp32", "--n", "all",
                 "--attacks", "loss", "--completion-n", "0", "--resamples", "20", "--quiet", "--json", "--out", str(out)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in data["metrics"]][:3] == ["auc", "tpr@1%fpr", "tpr@0.1%fpr"]
    assert data["environment"]["n_members"] == N


@pytest.mark.parametrize("extra, message", [
    (["--attacks", "loss,nope"], "unknown attack 'nope'; valid: loss, zlib"),
    (["--n", "500"], "asked for 500 + 500 samples"),
    (["--n", "zero"], "--n must be a positive integer or 'all'"),
    (["--precisions", "fp64"], "fp64"),
])
def test_cli_bad_input_is_one_line_exit_2(memorised, tmp_path, capsys, extra, message):
    args = ["privacy", "--model", str(memorised["target"]), "--out", str(tmp_path / "o"), "--quiet", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_empty_member_file(memorised, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert main(["privacy", "--model", str(memorised["target"]), "--data", str(empty), "--nonmembers",
                 str(memorised["members"]), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "empty.jsonl: no samples (empty member file)" in err and len(err.splitlines()) == 1


def test_mimir_attacks_end_to_end_and_gradnorm_skipped_where_weights_are_quantized(memorised):
    from quantrisk.privacy.members import load_mi_set
    from quantrisk.privacy.study import PrivacyOptions, privacy_at_precision

    mi = load_mi_set(memorised["target"], N)
    opts = PrivacyOptions(attacks=("dcpdd", "gradnorm", "neighbourhood"), n_resamples=100, completion_n=0)
    r = privacy_at_precision(memorised["target"], "fp32", samples=mi, options=opts)
    assert {m.labels["attack"] for m in r.metrics if m.name == "auc"} == {"dcpdd", "gradnorm", "neighbourhood"}
    assert r.metric("auc", attack="gradnorm") > 0.8  # memorised members: small gradients
    rows = [s for s in r.samples if s["kind"] == "mi"]
    assert all(s["gradnorm"] < 0 and s["dcpdd"] > 0 for s in rows)
    q = privacy_at_precision(memorised["target"], "int8-dynamic", samples=mi, options=opts)
    assert "gradnorm" not in {m.labels["attack"] for m in q.metrics if m.name == "auc"}
    assert any(k.startswith("gradnorm: weights stored quantized") for k in q.skipped)
