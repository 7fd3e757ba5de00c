"""Seed scale: a 7B-class (or 2.8B) checkpoint through loading, MI scoring, DAP2 generation and QLoRA, per precision.

No hub is reachable, so the checkpoint is built here: random weights (seeded, the architecture's own init) of the
real shape, saved as sharded safetensors by `save_pretrained`, with a byte-level BPE tokenizer of exactly the
shape's vocabulary size trained with `tokenizers` on the Python standard library of the running interpreter (real
code, local, identical on every machine with the same Python). Random weights give the real compute and memory of
the shape; they say nothing about accuracy.

Per precision (each loaded through `quantrisk.models.load.load_model`, which refuses up front what would not fit):
load seconds, peak device memory of the load, weight bytes held; MI scoring tokens/s through the engine
(`score_token_ids`) and its share of the measured bf16 matmul peak (2·P FLOPs per token, P = parameters of the
unquantized model); greedy generation tokens/s through the trojan study's `generate` at each batch size of the
grid (text-to-SQL prompts of the shipped sqlqa rows); for LoRA-trainable bases in `--qlora`, the DAP1 step of
`finetune_lora` (labelled-position loss, bf16 autocast): step seconds, tokens/s and MFU = 4·P·tokens/s / peak
(forward 2P + input gradients 2P; the frozen base has no weight gradients).

Anchors, measured in the same process on the same model and inputs, reported as ratios (quantrisk / anchor):
plain batched forward scoring (fixed batches in input order, full-vocabulary fp32 log-softmax); HF `generate`
batched (left-padded, default cache, greedy, stopping at EOS only) and one prompt at a time; the plain
peft + bitsandbytes QLoRA step (`model(input_ids, attention_mask, labels).loss` on the same peft model and batches).
"""

from __future__ import annotations

import gc
import json
import sysconfig
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import machine, sync, time_it, versions

# name: (family, hidden, layers, heads, intermediate, model vocab, tokenizer vocab, context, rope theta)
SHAPES: dict[str, tuple[str, int, int, int, int, int, int, int, float]] = {
    "llama-2-7b": ("llama", 4096, 32, 32, 11008, 32000, 32000, 4096, 10000.0),
    "codellama-7b": ("llama", 4096, 32, 32, 11008, 32016, 32016, 16384, 1e6),
    "pythia-2.8b": ("gpt_neox", 2560, 32, 32, 10240, 50304, 50277, 2048, 10000.0),
    "llama-tiny": ("llama", 64, 2, 4, 172, 512, 512, 512, 10000.0),  # the CPU test's shape
    "pythia-tiny": ("gpt_neox", 64, 2, 4, 256, 576, 560, 512, 10000.0),
}
DEFAULT_PRECISIONS = "bf16,bnb-int8,bnb-nf4,torchao-int4wo-g128,hqq-w4g64,gptq-w4g128"
CORPUS_BYTES = 8_000_000  # stdlib source read for a real-size tokenizer (the whole stdlib is ~30 MB)
SMALL_CORPUS_BYTES = 400_000  # for the test shapes' vocabularies of a few hundred tokens


def config(shape: str) -> Any:
    """The transformers config of `shape`."""
    from transformers import GPTNeoXConfig, LlamaConfig

    family, h, layers, heads, inter, vocab, _, ctx, theta = SHAPES[shape]
    if family == "llama":
        return LlamaConfig(vocab_size=vocab, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                           num_key_value_heads=heads, intermediate_size=inter, max_position_embeddings=ctx,
                           rms_norm_eps=1e-5, rope_theta=theta, tie_word_embeddings=False,
                           bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return GPTNeoXConfig(vocab_size=vocab, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=inter, max_position_embeddings=ctx, rotary_pct=0.25,
                         tie_word_embeddings=False, bos_token_id=0, eos_token_id=0, pad_token_id=0)


def stdlib_texts(limit_bytes: int = CORPUS_BYTES) -> list[str]:
    """Python files of the running interpreter's standard library, then (if short) of its site-packages (sorted
    paths, first `limit_bytes` characters)."""
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"]), Path(paths["purelib"])]
    files = [p for p in sorted(roots[0].rglob("*.py")) if "site-packages" not in p.parts]
    files += sorted(roots[1].rglob("*.py"))
    texts, total = [], 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        texts.append(text)
        total += len(text)
        if total >= limit_bytes:
            break
    return texts


def build_tokenizer(size: int) -> Any:
    """A byte-level BPE of exactly `size` tokens trained on the stdlib (quantrisk's own trainer)."""
    from quantrisk.models.tokenizer import train_tokenizer

    budget = SMALL_CORPUS_BYTES if size < 4096 else CORPUS_BYTES * (2 if size > 40000 else 1)
    tok = train_tokenizer(stdlib_texts(budget), size)
    if len(tok) != size:
        raise RuntimeError(f"BPE reached {len(tok)} tokens, not {size}: the corpus is too small")
    return tok


def build_checkpoint(shape: str, out: Path, device: str, max_shard_size: str = "2GB") -> dict[str, Any]:
    """Write the random-weight checkpoint of `shape` (bf16 safetensors shards + tokenizer) to `out`; reuse one
    already there. Returns facts about it (parameters, shards, seconds)."""
    import torch
    from transformers import AutoModelForCausalLM

    marker = out / "scale.json"
    if marker.is_file():
        return json.loads(marker.read_text())
    start = time.perf_counter()
    tok = build_tokenizer(SHAPES[shape][6])
    t_tok = time.perf_counter() - start
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config(shape), dtype=torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True, max_shard_size=max_shard_size)
    tok.save_pretrained(out)
    del model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    facts = {"shape": shape, "params": n, "shards": len(list(out.glob("*.safetensors"))),
             "tokenizer": f"byte-level BPE, {len(tok)} tokens, trained on the Python {sysconfig.get_python_version()} "
                          "stdlib", "tokenizer_seconds": round(t_tok, 2),
             "build_seconds": round(time.perf_counter() - start, 2)}
    marker.write_text(json.dumps(facts))
    return facts


def sql_prompts(n: int, data: str | None) -> tuple[list[str], list[Any]]:
    """n text-to-SQL prompts (the trojan study's template) and the rows, from `data` or the shipped sqlqa rows."""
    from quantrisk.data.sql import format_prompt, load_sql_rows

    path = data or str(Path(__file__).resolve().parents[1] / "tests" / "data" / "sqlqa" / "sqlqa.jsonl")
    rows = load_sql_rows(path, limit=max(n, 64))
    rows = (rows * (n // len(rows) + 1))[:max(n, 64)]
    return [format_prompt(r) for r in rows[:n]], rows


def _peak(device: str) -> int:
    import torch

    return int(torch.cuda.max_memory_allocated()) if device.startswith("cuda") else 0


def _reset(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def plain_scoring(model: Any, seqs: list[list[int]], batch: int, device: str) -> None:
    """Anchor: fixed batches in input order, right-padded, full logits, fp32 log-softmax, gather."""
    import torch

    with torch.no_grad():
        for i in range(0, len(seqs), batch):
            part = seqs[i:i + batch]
            width = max(len(s) for s in part)
            ids = torch.zeros(len(part), width, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, s in enumerate(part):
                ids[j, :len(s)] = torch.tensor(s)
                mask[j, :len(s)] = 1
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            _ = (lp * mask[:, 1:]).sum().item()


def hf_generate(model: Any, tok: Any, prompts: list[str], batch: int, max_new: int) -> int:
    """Anchor: HF `generate`, greedy, left-padded batches, default cache; returns the new tokens before EOS."""
    import torch

    side = tok.padding_side
    tok.padding_side = "left"
    device = next(model.parameters()).device
    made = 0
    try:
        with torch.no_grad():
            for i in range(0, len(prompts), batch):
                enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                out = model.generate(**enc, do_sample=False, max_new_tokens=max_new, pad_token_id=tok.pad_token_id)
                new = out[:, enc["input_ids"].shape[1]:]
                eos = (new == tok.eos_token_id).int()
                before = (eos.cumsum(-1) == 0).sum(-1)  # tokens before the first EOS (= all when none)
                made += int(before.sum())
    finally:
        tok.padding_side = side
    return made


def _rows(base: dict[str, Any], case: str, items: list[tuple[str, float, Any]]) -> list[dict[str, Any]]:
    out = []
    for metric, value, timing in items:
        row = {**base, "case": case, "metric": metric, "median": value}
        if timing is not None:
            row.update(timing)
        out.append(row)
    return out


def _spread(work: float, t: Any, repeats: int) -> dict[str, Any]:
    return {"low": work / t.high, "high": work / t.low, "repeats": repeats}


def measure_scoring(model: Any, seqs: list[list[int]], params: int, peak: float, device: str, repeats: int,
                    batch_tokens: int, length: int, compile: bool) -> tuple[list[tuple], dict[str, float]]:
    from quantrisk.scoring import score_token_ids

    tokens = sum(len(s) - 1 for s in seqs)
    t = time_it(lambda: score_token_ids(model, seqs, batch_size=max(1, batch_tokens // 64), batch_tokens=batch_tokens,
                                        compile=compile), repeats=repeats, warmup=1, device=device)
    anchor_batch = max(1, min(len(seqs), batch_tokens // length))
    ta = time_it(lambda: plain_scoring(model, seqs, anchor_batch, device), repeats=repeats, warmup=1, device=device)
    tps, atps = tokens / t.median, tokens / ta.median
    share = 2 * params * tps / 1e12 / peak
    items = [("scoring tokens/s", tps, _spread(tokens, t, repeats)),
             ("scoring share of measured peak (2·P·tok/s)", share, None),
             (f"anchor: plain batched forward scoring tokens/s (batch {anchor_batch})", atps,
              _spread(tokens, ta, repeats)),
             ("scoring ratio engine / plain forward", tps / atps, None)]
    return items, {"scoring_tps": tps, "scoring_share": share, "scoring_anchor_tps": atps}


def measure_generation(model: Any, tok: Any, prompts: list[str], batches: list[int], max_new: int, device: str,
                       repeats: int, single_n: int) -> tuple[list[tuple], dict[str, float]]:
    from quantrisk.trojan.generate import generate

    items, facts = [], {}
    for b in batches:
        state: dict[str, int] = {}

        def ours(b: int = b, state: dict[str, int] = state) -> None:
            gens, _ = generate(model, tok, prompts, batch_size=b, max_new_tokens=max_new)
            state["tokens"] = sum(g.steps for g in gens)

        t = time_it(ours, repeats=repeats, warmup=1, device=device)
        tps = state["tokens"] / t.median
        items.append((f"generation tokens/s bs={b}", tps, _spread(state["tokens"], t, repeats)))
        facts[f"gen_tps_bs{b}"] = tps
    b = max(batches)
    made: dict[str, int] = {}
    ta = time_it(lambda: made.__setitem__("n", hf_generate(model, tok, prompts, b, max_new)), repeats=repeats,
                 warmup=1, device=device)
    hf_tps = made["n"] / ta.median
    items.append((f"anchor: HF generate batched tokens/s bs={b}", hf_tps, _spread(made["n"], ta, repeats)))
    items.append((f"generation ratio quantrisk / HF batched (bs={b})", facts[f"gen_tps_bs{b}"] / hf_tps, None))
    single = prompts[:single_n]
    ts = time_it(lambda: made.__setitem__("s", hf_generate(model, tok, single, 1, max_new)), repeats=1, warmup=0,
                 device=device)
    one_tps = made["s"] / ts.median
    items.append((f"anchor: HF generate one prompt at a time tokens/s (first {single_n})", one_tps, None))
    items.append((f"generation ratio quantrisk bs={b} / HF one at a time", facts[f"gen_tps_bs{b}"] / one_tps, None))
    facts.update(hf_batched_tps=hf_tps, hf_single_tps=one_tps)
    return items, facts


def measure_qlora(source: str, precision: str, rows: list[Any], device: str, steps: int, warm: int, batch: int,
                  max_length: int, params: int, peak: float) -> tuple[list[tuple], dict[str, float]]:
    """The DAP1 step of `finetune_lora` (same load, LoRA config, loss and autocast) vs the plain peft loop."""
    import random

    import torch
    from peft import LoraConfig, get_peft_model

    from quantrisk.models.load import load_model
    from quantrisk.trojan.finetune import _batches, collate, encode_rows, labelled_loss, resolve_targets

    lm = load_model(source, precision, device, for_training=True)
    model, tok = lm.model, lm.tokenizer
    model.config.use_cache = False
    torch.manual_seed(0)
    cfg = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.05, target_modules=resolve_targets(model, "attention"),
                     bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    model.train()
    params_t = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params_t, lr=1e-4, weight_decay=0.0)
    examples, _ = encode_rows(tok, rows, max_length, "response")
    order = _batches(len(examples), min(batch, len(examples)), random.Random(0))
    fixed = [collate([examples[i] for i in next(order)], tok.pad_token_id) for _ in range(warm + steps)]
    dev = next(p.device for p in model.parameters())
    cuda = dev.type == "cuda"

    def loop(plain: bool) -> tuple[float, int]:
        tokens, seconds = 0, 0.0
        for k, (ids, mask, labels) in enumerate(fixed):
            ids, mask, labels = ids.to(dev), mask.to(dev), labels.to(dev)
            sync(device)
            t0 = time.perf_counter()
            if plain:
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            else:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    loss = labelled_loss(model, ids, mask, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params_t, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync(device)
            if k >= warm:
                seconds += time.perf_counter() - t0
                tokens += int(mask.sum())
        return seconds, tokens

    s_ours, tokens = loop(False)
    s_plain, _ = loop(True)
    tps, ptps = tokens / s_ours, tokens / s_plain
    mfu = 4 * params * tps / 1e12 / peak
    items = [(f"DAP1 LoRA step seconds (bs={batch}, ≤{max_length} tok)", s_ours / steps, None),
             ("DAP1 LoRA tokens/s", tps, None), ("DAP1 LoRA MFU (4·P·tok/s / peak)", mfu, None),
             ("anchor: plain peft loop tokens/s (model(..., labels).loss)", ptps, None),
             ("DAP1 ratio quantrisk / plain peft loop", tps / ptps, None),
             ("DAP1 peak device memory GiB", _peak(device) / 2**30, None)]
    return items, {"qlora_tps": tps, "qlora_mfu": mfu, "qlora_plain_tps": ptps, "qlora_step_s": s_ours / steps}


def run(shape: str, device: str, precisions: list[str], work: Path, repeats: int, command: str, *,
        score_n: int = 64, length: int = 512, batch_tokens: int = 32768, compile: bool = False,
        gen_n: int = 64, gen_batches: tuple[int, ...] = (16, 64), max_new: int = 48, single_n: int = 4,
        qlora: tuple[str, ...] = ("bnb-nf4",), qlora_steps: int = 8, qlora_warm: int = 2, qlora_batch: int = 8,
        qlora_len: int = 512, data: str | None = None, json_out: Path | None = None,
        budget_s: float | None = None) -> list[dict[str, Any]]:
    """Build (or reuse) the checkpoint under `work`, then measure each precision; rows for BENCHMARKS.md.
    `budget_s`: start no further precision once this many seconds have passed (a row says which were skipped)."""
    started = time.perf_counter()
    from benchmarks.scoring import matmul_peak, sequences
    from quantrisk.errors import QuantriskError
    from quantrisk.models.load import load_model
    from quantrisk.precision import require_available

    ckpt = work / shape
    facts = build_checkpoint(shape, ckpt, device if device.startswith("cuda") else "cpu",
                             max_shard_size="2GB" if SHAPES[shape][1] >= 1024 else "200KB")
    peak = matmul_peak(device)
    base = {"benchmark": "scale", "machine": machine(device), "versions": versions(), "command": command}
    rows = _rows(base, shape, [("checkpoint build seconds (tokenizer + init + save)", facts["build_seconds"], None),
                               ("checkpoint parameters", float(facts["params"]), None),
                               ("bf16 matmul peak TFLOP/s (measured)" if device.startswith("cuda")
                                else "fp32 matmul peak TFLOP/s (measured)", peak, None)])
    seqs = sequences(score_n, min(length, SHAPES[shape][7]), SHAPES[shape][6])
    prompts, sql_rows = sql_prompts(gen_n, data)
    results: dict[str, Any] = {"checkpoint": facts, "peak_tflops": peak, "precisions": {}}
    for name in precisions:
        case = f"{shape} {name}"
        if budget_s is not None and time.perf_counter() - started > budget_s:
            rows += _rows(base, case, [(f"skipped: time budget of {budget_s:.0f} s spent", float("nan"), None)])
            results["precisions"][name] = {"skipped": "time budget"}
            continue
        try:
            require_available(name, device)
        except QuantriskError as exc:
            rows += _rows(base, case, [(f"unavailable: {str(exc).splitlines()[0][:160]}", float("nan"), None)])
            results["precisions"][name] = {"unavailable": str(exc)}
            continue
        _reset(device)
        t0 = time.perf_counter()
        try:
            lm = load_model(str(ckpt), name, device)
        except QuantriskError as exc:  # refused up front (would not fit) or failed to load: say so, go on
            rows += _rows(base, case, [(f"refused: {str(exc).splitlines()[0][:200]}", float("nan"), None)])
            results["precisions"][name] = {"refused": str(exc)}
            continue
        load_s = time.perf_counter() - t0
        model, tok, rec = lm.model, lm.tokenizer, lm.record
        params = rec.n_params
        got: dict[str, Any] = {"load_s": load_s, "load_peak_gib": _peak(device) / 2**30,
                               "weight_gib": rec.weight_bytes / 2**30, "params": params}
        items: list[tuple] = [("load seconds", load_s, None), ("load peak device memory GiB", got["load_peak_gib"], None),
                              ("weight GiB held", got["weight_gib"], None)]
        _reset(device)
        more, f = measure_scoring(model, seqs, params, peak, device, repeats, batch_tokens, length, compile)
        items += more + [("scoring peak device memory GiB", _peak(device) / 2**30, None)]
        got.update(f)
        _reset(device)
        more, f = measure_generation(model, tok, prompts, list(gen_batches), max_new, device, repeats, single_n)
        items += more + [("generation peak device memory GiB", _peak(device) / 2**30, None)]
        got.update(f)
        del model, lm
        _reset(device)
        if name in qlora:
            more, f = measure_qlora(str(ckpt), name, sql_rows, device, qlora_steps, qlora_warm, qlora_batch, qlora_len,
                                    params, peak)
            items += more
            got.update(f)
            _reset(device)
        rows += _rows(base, case, items)
        results["precisions"][name] = got
        if json_out is not None:  # after every precision: a run cut short keeps what it finished
            json_out.write_text(json.dumps(results, indent=1, default=float))
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=1, default=float))
    return rows


def ratios_ok(results: dict[str, Any]) -> dict[str, bool]:
    """Whether each precision is at least as fast as each of its anchors (the issue's 'nothing slower')."""
    out = {}
    for name, r in results.get("precisions", {}).items():
        if "scoring_tps" not in r:
            continue
        gen = [v for k, v in r.items() if k.startswith("gen_tps_bs")]
        checks = [r["scoring_tps"] >= r["scoring_anchor_tps"], bool(gen) and max(gen) >= r["hf_batched_tps"]]
        if "qlora_tps" in r:
            checks.append(r["qlora_tps"] >= r["qlora_plain_tps"])
        out[name] = all(checks)
    return out


def code_functions(n: int, min_chars: int = 120, max_chars: int = 2000) -> list[str]:
    """Up to n distinct top-level function definitions (source text) from the stdlib, in sorted-path order."""
    import ast

    out, seen = [], set()
    for text in stdlib_texts(20_000_000):
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                src = ast.get_source_segment(text, node) or ""
                if min_chars <= len(src) <= max_chars and src not in seen:
                    seen.add(src)
                    out.append(src)
                    if len(out) >= n:
                        return out
    return out


def write_labelled(path: Path, n_each: int) -> int:
    """A labelled JSONL (text, label) of 2·n_each stdlib functions, labels alternating: the input of a privacy
    run's timing on the random-weight checkpoint (which has no members: its AUCs are chance by construction)."""
    funcs = code_functions(2 * n_each)
    path.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(funcs)),
                    encoding="utf-8")
    return len(funcs)


if __name__ == "__main__":  # python -m benchmarks.scale labelled PATH N_EACH | checkpoint SHAPE DIR DEVICE
    import sys

    usage = "usage: python -m benchmarks.scale labelled PATH N_EACH | checkpoint SHAPE DIR DEVICE"
    if len(sys.argv) == 4 and sys.argv[1] == "labelled":
        print(write_labelled(Path(sys.argv[2]), int(sys.argv[3])))
    elif len(sys.argv) == 5 and sys.argv[1] == "checkpoint" and sys.argv[2] in SHAPES:
        print(json.dumps(build_checkpoint(sys.argv[2], Path(sys.argv[3]), sys.argv[4])))
    else:
        raise SystemExit(usage)
