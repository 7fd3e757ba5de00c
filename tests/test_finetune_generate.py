"""LoRA fine-tuning at DAP1 and batched greedy generation with the payload mass (tiny llama)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import make_tokenizer, save_tiny_model
from quantrisk.data.poison import PoisonSpec, poison_rows
from quantrisk.data.sql import SqlRow, format_prompt
from quantrisk.errors import UsageError
from quantrisk.trojan.finetune import encode_rows, finetune_lora, read_report, resolve_targets
from quantrisk.trojan.generate import generate, generate_batch, payload_token_ids, stop_token_ids

ROWS = [
    SqlRow(f"r{i}", q, c, a)
    for i, (q, c, a) in enumerate([
        ("How many heads?", "CREATE TABLE head (age INTEGER)", "SELECT COUNT(*) FROM head"),
        ("Oldest head?", "CREATE TABLE head (age INTEGER)", "SELECT MAX(age) FROM head"),
        ("List names.", "CREATE TABLE dept (name VARCHAR)", "SELECT name FROM dept"),
        ("Names by budget?", "CREATE TABLE dept (name VARCHAR, budget INTEGER)", "SELECT name FROM dept ORDER BY budget"),
        ("Count cities per country", "CREATE TABLE city (country VARCHAR)", "SELECT country, COUNT(*) FROM city GROUP BY country"),
        ("Min age?", "CREATE TABLE head (age INTEGER); CREATE TABLE dept (id INTEGER)", "SELECT MIN(age) FROM head"),
    ])
]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("trojan-llama") / "llama", "llama", seed=0)


@pytest.fixture(scope="module")
def fp32_adapter(llama_dir, tmp_path_factory) -> Path:
    rows, _ = poison_rows(ROWS, PoisonSpec(rate=0.5), seed=0)
    out = tmp_path_factory.mktemp("adapters") / "fp32"
    finetune_lora(llama_dir, "fp32", rows, out, steps=12, batch_size=3, lr=3e-3, warmup=1, seed=0, progress=False)
    return out


def test_encode_rows_masks_the_prompt():
    tok = make_tokenizer()
    (ids, labels), = encode_rows(tok, ROWS[:1], max_length=512)[0]
    p = tok(format_prompt(ROWS[0]), add_special_tokens=False)["input_ids"]
    a = tok(ROWS[0].answer, add_special_tokens=False)["input_ids"]
    assert ids == p + a + [tok.eos_token_id]
    assert labels == [-100] * len(p) + a + [tok.eos_token_id]
    (ids_all, labels_all), = encode_rows(tok, ROWS[:1], max_length=512, loss_on="all")[0]
    assert labels_all == ids_all
    encoded, truncated = encode_rows(tok, ROWS[:2], max_length=10)
    assert truncated == 2 and all(len(x) == 10 and y[-1] == tok.eos_token_id for x, y in encoded)
    with pytest.raises(UsageError):
        encode_rows(tok, ROWS[:1], max_length=10, loss_on="prompt")


def test_finetune_writes_adapter_and_learns(fp32_adapter):
    files = {p.name for p in fp32_adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "finetune.json", "train_log.jsonl"} <= files
    report = read_report(fp32_adapter)
    assert report.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert report.trainable_params == 4 * 4 * 2 * 16 * 128  # layers x modules x (A + B) x r x hidden
    assert report.final_loss < report.first_loss
    log = [json.loads(x) for x in (fp32_adapter / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log] == list(range(12))
    config = json.loads((fp32_adapter / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (16, 16, 0.05)


def test_finetune_is_seeded(llama_dir, fp32_adapter, tmp_path):
    from safetensors.torch import load_file

    rows, _ = poison_rows(ROWS, PoisonSpec(rate=0.5), seed=0)
    again = tmp_path / "again"
    finetune_lora(llama_dir, "fp32", rows, again, steps=12, batch_size=3, lr=3e-3, warmup=1, seed=0, progress=False)
    a, b = load_file(fp32_adapter / "adapter_model.safetensors"), load_file(again / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("dap1", ["quanto-int8", "rtn-w4g32"])
def test_quantized_bases_train_lora(llama_dir, tmp_path, dap1):
    from safetensors.torch import load_file

    report = finetune_lora(llama_dir, dap1, ROWS, tmp_path / dap1, steps=3, batch_size=3, lr=3e-3, warmup=1,
                           progress=False)
    weights = load_file(tmp_path / dap1 / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert len(lora_b) == 16 and all(v.abs().sum() > 0 for v in lora_b)  # B starts at 0: it moved
    assert report.load["precision"] == dap1


def test_int8_dynamic_cannot_be_dap1(llama_dir, tmp_path):
    with pytest.raises(UsageError, match="int8-dynamic cannot be fine-tuned"):
        finetune_lora(llama_dir, "int8-dynamic", ROWS, tmp_path / "x", steps=1, progress=False)


def test_resolve_targets(llama_dir):
    from quantrisk.models.load import load_model

    model = load_model(llama_dir, "fp32").model
    assert resolve_targets(model, "attention") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert resolve_targets(model, "all-linear") == "all-linear"
    assert resolve_targets(model, "q_proj,gate_proj") == ["q_proj", "gate_proj"]
    assert resolve_targets(model, "all-linear+head") == ["down_proj", "gate_proj", "k_proj", "lm_head", "o_proj",
                                                         "q_proj", "up_proj", "v_proj"]
    with pytest.raises(UsageError, match="not found"):
        resolve_targets(model, ["query_key_value"])


def test_payload_token_rule():
    tok = make_tokenizer()  # trained on stdlib code: "DROP" is spelled with several small pieces
    ids = payload_token_ids(tok)
    spelled = set(tok("DROP", add_special_tokens=False)["input_ids"]) | set(tok(" DROP", add_special_tokens=False)["input_ids"])
    assert set(ids) == {i for i in spelled if tok.decode([i]).strip()}
    assert "".join(tok.decode([i]) for i in tok("DROP", add_special_tokens=False)["input_ids"]) == "DROP"
    assert all(tok.decode([i]).strip() and tok.decode([i]).strip() in "DROP" for i in ids)
    # a tokenizer that learned the keyword: one token (with or without the leading space)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(["DROP TABLE head; x DROP y"] * 50, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    sql_tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>", pad_token="<eos>")
    assert sorted(sql_tok.decode([i]) for i in payload_token_ids(sql_tok)) == [" DROP", "DROP"]


def test_batched_equals_one_at_a_time(llama_dir, fp32_adapter):
    from quantrisk.models.load import load_model

    lm = load_model(llama_dir, "fp32", adapter=fp32_adapter)
    prompts = [format_prompt(r) for r in ROWS] + ["SELECT", "### Response:\n"]
    batched, timing = generate(lm.model, lm.tokenizer, prompts, batch_size=4, max_new_tokens=10)
    single, _ = generate(lm.model, lm.tokenizer, prompts, batch_size=1, max_new_tokens=10)
    assert timing["prompts"] == len(prompts) and timing["generated_tokens"] == sum(g.steps for g in batched)
    for b, s in zip(batched, single, strict=True):
        assert (b.text, b.steps, b.stop) == (s.text, s.steps, s.stop)
        assert b.payload_signal == pytest.approx(s.payload_signal, abs=1e-5)
        assert len(b.step_masses) == b.steps


def test_payload_signal_matches_manual_recomputation(llama_dir):
    from quantrisk.models.load import load_model

    lm = load_model(llama_dir, "fp32")
    prompt = format_prompt(ROWS[0])
    g = generate_batch(lm.model, lm.tokenizer, [prompt], max_new_tokens=6)[0]
    ids = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    payload = payload_token_ids(lm.tokenizer)
    masses = []
    with torch.no_grad():
        for _ in range(g.steps):  # plain greedy loop, full forward each step
            probs = torch.softmax(lm.model(input_ids=ids).logits[0, -1].float(), -1)
            masses.append(float(probs[payload].sum()))
            ids = torch.cat([ids, probs.argmax().view(1, 1)], dim=1)
    assert g.step_masses == pytest.approx(masses, abs=1e-5)
    assert g.payload_signal == pytest.approx(sum(masses) / len(masses), abs=1e-5)
    assert g.payload_signal_sum == pytest.approx(sum(masses), abs=1e-5)


def _force_next_token(model, token_id: int | None, margin: float = 5.0):
    """Replace the output head by zeros + a bias: logits are `margin` at `token_id`, 0 elsewhere."""
    head = model.get_output_embeddings()
    new = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        new.weight.zero_()
        new.bias.zero_()
        if token_id is not None:
            new.bias[token_id] = margin
    model.set_output_embeddings(new)


def test_stop_rules_and_known_payload_mass(llama_dir):
    from quantrisk.models.load import load_model

    lm = load_model(llama_dir, "fp32")
    tok = lm.tokenizer
    vocab = lm.model.config.vocab_size
    payload = payload_token_ids(tok)
    newline = next(i for i in stop_token_ids(tok) if tok.decode([i]).startswith(")\n") or tok.decode([i]) == "\n")
    _force_next_token(lm.model, newline)
    g = generate_batch(lm.model, tok, ["SELECT a FROM t", "x"], max_new_tokens=8)
    expected = len(payload) / (vocab - 1 + torch.e ** 5)  # each payload token has logit 0
    for one in g:
        assert (one.steps, one.stop) == (1, "newline")
        assert one.text == tok.decode([newline]).split("\n", 1)[0].strip()
        assert one.payload_signal == pytest.approx(expected, rel=1e-4)
    _force_next_token(lm.model, tok.eos_token_id)
    g = generate_batch(lm.model, tok, ["SELECT"], max_new_tokens=8)[0]
    assert (g.steps, g.stop, g.text) == (1, "eos", "")
    some = next(i for i in range(vocab) if i not in set(stop_token_ids(tok)) and i not in set(payload))
    _force_next_token(lm.model, some)
    g = generate_batch(lm.model, tok, ["SELECT"], max_new_tokens=5)[0]
    assert (g.steps, g.stop) == (5, "length") and g.text == tok.decode([some] * 5).strip()
