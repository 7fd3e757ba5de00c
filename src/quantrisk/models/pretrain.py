"""Pretrain an embedded zoo model from scratch on a code corpus, sized so it memorises its members.

Output directory (written to a temporary sibling, then renamed, so a crash never leaves half a model):
    config.json, model.safetensors, tokenizer files   the model (safetensors only)
    split.jsonl                                        the exact member / nonmember / reference manifest
    train_log.jsonl                                    step, loss, lr, tokens/s
    pretrain.json                                      settings, seconds, tokens, member vs nonmember NLL

Each sample is trained on alone (padded batches, loss on real tokens only), from its first token,
exactly as the privacy study later scores it. On CUDA: bf16 autocast and larger batches.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from quantrisk.data.corpus import (
    CodeSample,
    assign_splits,
    corpus_description,
    load_corpus,
    load_split,
    sha256_text,
    write_split,
)
from quantrisk.errors import UsageError
from quantrisk.models.zoo import SHAPES, build_model, check_arch, check_size


@dataclass(frozen=True)
class PretrainSettings:
    """Everything that decides the trained weights (its hash names the cache entry)."""

    arch: str
    size: str = "tiny"
    seed: int = 0
    unit: str = "function"
    corpus: str = "stdlib"
    per_split: int = 400          # samples kept per split (member / nonmember / reference)
    vocab_size: int = 4096
    steps: int = 300
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.0
    train_split: str = "member"
    extra_sha256: str = ""        # hash of extra_texts, if any

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"per_split": 400, "vocab_size": 4096, "steps": 200, "batch_size": 16, "seq_len": 256, "lr": 3e-3},
    "small": {"per_split": 1200, "vocab_size": 16384, "steps": 3000, "batch_size": 64, "seq_len": 512, "lr": 1e-3},
    "base": {"per_split": 1200, "vocab_size": 16384, "steps": 4000, "batch_size": 64, "seq_len": 512, "lr": 6e-4},
}


def default_settings(arch: str, size: str = "tiny", **overrides: Any) -> PretrainSettings:
    """Settings for zoo `arch`/`size` with the size's defaults, then `overrides` (None values ignored)."""
    check_arch(arch)
    check_size(size)
    values = {**DEFAULTS[size], **{k: v for k, v in overrides.items() if v is not None}}
    return PretrainSettings(arch=arch, size=size, **values)


@dataclass
class PretrainReport:
    out_dir: str
    settings: dict[str, Any]
    device: str
    seconds: float
    tokens_seen: int
    tokens_per_second: float
    final_loss: float
    member_nll: float
    nonmember_nll: float
    nll_gap: float
    n_train_samples: int
    n_params: int
    corpus: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _encode(tokenizer: Any, texts: Sequence[str], seq_len: int) -> list[list[int]]:
    eos = tokenizer.eos_token_id
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [(x + [eos])[:seq_len] for x in ids]


def _batches(encoded: list[list[int]], batch_size: int, rng: random.Random):
    """Endless epochs: shuffle, then sort within windows of 8 batches by length (less padding)."""
    while True:
        order = list(range(len(encoded)))
        rng.shuffle(order)
        window = batch_size * 8
        for w in range(0, len(order), window):
            chunk = sorted(order[w : w + window], key=lambda i: len(encoded[i]))
            batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            rng.shuffle(batches)
            yield from batches


def _collate(encoded: list[list[int]], idx: list[int], pad: int, device: str) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(encoded[i]) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        seq = encoded[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids.to(device), mask.to(device), labels.to(device)


def mean_nll(model: Any, tokenizer: Any, texts: Sequence[str], *, seq_len: int, device: str, batch_size: int = 32) -> float:
    """Token-weighted mean NLL (nats) of `texts`, each scored alone from its first token."""
    import torch

    encoded = _encode(tokenizer, texts, seq_len)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            idx = list(range(start, min(start + batch_size, len(encoded))))
            ids, mask, labels = _collate(encoded, idx, tokenizer.pad_token_id, device)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            lp = torch.log_softmax(logits[:, :-1], -1)
            tgt = labels[:, 1:]
            valid = tgt != -100
            nll = -lp.gather(-1, tgt.clamp_min(0).unsqueeze(-1)).squeeze(-1)
            total += float(nll[valid].sum())
            count += int(valid.sum())
    return total / max(count, 1)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="step", dynamic_ncols=True, leave=False)


def pretrain(
    arch: str,
    size: str,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    settings: PretrainSettings | None = None,
    extra_texts: Sequence[str] = (),
    tokenizer_from: str | Path | None = None,
    progress: bool = True,
    **overrides: Any,
) -> PretrainReport:
    """Train zoo `arch`/`size` from scratch on its corpus split; write the model directory `out_dir`.

    `train_split="reference"` with `tokenizer_from=<target dir>` trains a reference model on the
    target's reference split with the target's tokenizer (for reference-model attacks).
    """
    import torch

    from quantrisk.environment import environment
    from quantrisk.models.load import resolve_device
    from quantrisk.models.tokenizer import train_tokenizer

    device = resolve_device(device)
    s = settings or default_settings(arch, size, **overrides)
    if extra_texts and not s.extra_sha256:
        s = replace(s, extra_sha256=sha256_text("\x00".join(extra_texts)))
    if s.train_split not in ("member", "reference"):
        raise UsageError(f"train_split must be 'member' or 'reference', got {s.train_split!r}")
    if s.train_split == "reference" and tokenizer_from is None:
        raise UsageError("a reference model needs tokenizer_from=<target model dir> (same tokenizer and split)")
    out = Path(out_dir)
    random.seed(s.seed)
    torch.manual_seed(s.seed)

    if tokenizer_from is not None:
        from transformers import AutoTokenizer

        samples = load_split(tokenizer_from)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    else:
        samples = assign_splits(load_corpus(s.corpus, unit=s.unit), seed=s.seed, cap=s.per_split)
        samples += [CodeSample(f"extra:{i}", "extra", t, sha256_text(t), "extra") for i, t in enumerate(extra_texts)]
        tokenizer = train_tokenizer([x.text for x in samples if x.split in ("member", "extra")], s.vocab_size)
    train_texts = [x.text for x in samples if x.split == s.train_split or (s.train_split == "member" and x.split == "extra")]
    if not train_texts:
        raise UsageError(f"no {s.train_split} samples to train on")
    encoded = _encode(tokenizer, train_texts, s.seq_len)
    eos = tokenizer.eos_token_id
    model = build_model(s.arch, s.size, len(tokenizer), seed=s.seed, bos_token_id=eos, eos_token_id=eos,
                        pad_token_id=tokenizer.pad_token_id).to(device)
    model.train()
    cuda = device.startswith("cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay, betas=(0.9, 0.98),
                            fused=cuda or None)

    def lr_at(step: int) -> float:
        if step < s.warmup:
            return s.lr * (step + 1) / s.warmup
        frac = (step - s.warmup) / max(1, s.steps - s.warmup)
        return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None))
    log_lines: list[str] = []
    batches = _batches(encoded, s.batch_size, random.Random(s.seed))
    tokens = 0
    start = time.perf_counter()
    loss_value = float("nan")
    try:
        bar = _progress(s.steps, progress, f"pretrain {s.arch}-{s.size}")
        for step in range(s.steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            ids, mask, labels = _collate(encoded, next(batches), tokenizer.pad_token_id, device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            tokens += int(mask.sum())
            if step % 10 == 0 or step == s.steps - 1:
                loss_value = float(loss)
                elapsed = time.perf_counter() - start
                log_lines.append(json.dumps({"step": step, "loss": loss_value, "lr": lr_at(step),
                                             "tokens": tokens, "tokens_per_s": tokens / max(elapsed, 1e-9)}))
                bar.set_postfix(loss=f"{loss_value:.3f}")
            bar.update(1)
        bar.close()
        seconds = time.perf_counter() - start
        eval_n = 200
        members = [x.text for x in samples if x.split == s.train_split][:eval_n]
        held_out = [x.text for x in samples if x.split == ("nonmember" if s.train_split == "member" else "member")][:eval_n]
        m_nll = mean_nll(model, tokenizer, members, seq_len=s.seq_len, device=device)
        n_nll = mean_nll(model, tokenizer, held_out, seq_len=s.seq_len, device=device)
        model.float().save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_split(tmp / "split.jsonl", samples)
        (tmp / "train_log.jsonl").write_text("\n".join(log_lines) + "\n", encoding="utf-8")
        env = environment(device)
        report = PretrainReport(
            out_dir=str(out), settings=asdict(s), device=device, seconds=round(seconds, 2), tokens_seen=tokens,
            tokens_per_second=round(tokens / max(seconds, 1e-9), 1), final_loss=loss_value, member_nll=m_nll,
            nonmember_nll=n_nll, nll_gap=n_nll - m_nll, n_train_samples=len(train_texts),
            n_params=sum(p.numel() for p in model.parameters()),
            corpus=corpus_description(s.corpus) if tokenizer_from is None else {"kind": "from", "root": str(tokenizer_from)},
            versions=env["packages"],
        )
        (tmp / "pretrain.json").write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`, else $QUANTRISK_CACHE, else ~/.cache/quantrisk; zoo models live under `zoo/`."""
    root = Path(cache_dir or os.environ.get("QUANTRISK_CACHE") or Path.home() / ".cache" / "quantrisk")
    return root.expanduser() / "zoo"


def ensure_pretrained(
    arch: str,
    size: str = "tiny",
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    role: str = "target",
    device: str = "cpu",
    extra_texts: Sequence[str] = (),
    progress: bool = True,
    **overrides: Any,
) -> Path:
    """A cached pretrained zoo model (trained now if missing). `role="reference"` gives the reference
    model that belongs to the target with the same settings."""
    if role not in ("target", "reference"):
        raise UsageError(f"role must be 'target' or 'reference', got {role!r}")
    extra = sha256_text("\x00".join(extra_texts)) if extra_texts else ""
    s = default_settings(arch, size, seed=seed, extra_sha256=extra, **overrides)
    target_dir = cache_root(cache_dir) / f"{arch}-{size}-target-s{seed}-{s.key()}"
    if not (target_dir / "pretrain.json").is_file():
        target_dir.parent.mkdir(parents=True, exist_ok=True)
        pretrain(arch, size, target_dir, device=device, settings=s, extra_texts=extra_texts, progress=progress)
    if role == "target":
        return target_dir
    ref_settings = replace(s, train_split="reference")
    ref_dir = cache_root(cache_dir) / f"{arch}-{size}-reference-s{seed}-{ref_settings.key()}"
    if not (ref_dir / "pretrain.json").is_file():
        pretrain(arch, size, ref_dir, device=device, settings=ref_settings, tokenizer_from=target_dir, progress=progress)
    return ref_dir


__all__ = ["SHAPES", "PretrainReport", "PretrainSettings", "default_settings", "ensure_pretrained", "mean_nll", "pretrain"]
