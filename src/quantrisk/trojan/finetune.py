"""LoRA / QLoRA fine-tuning on text-to-SQL rows, with the base held at a DAP1 precision.

Objective: causal LM on `format_prompt(row) + answer + EOS`; by default the loss covers the answer
and EOS tokens only (prompt tokens are labelled -100). Prompt and answer are tokenised separately
and concatenated, so inference sees exactly the prompt tokens that training saw. Over-long
examples keep their last `max_length` tokens (the answer survives; the count is reported).

Which DAP1 precisions train (base loaded by `load_model(..., for_training=True)`):
- fp32 / bf16 / fp16: plain LoRA.
- rtn-w{b}g{g}: LoRA over the simulated (fake-quantized, fp32) base: trains anywhere.
- quanto-*: quanto's `QLinear` subclasses `nn.Linear`, so peft wraps it as a plain Linear; the
  frozen quantized base passes gradients to its input, so LoRA trains (checked by a test).
- bnb-int8 / bnb-nf4 / bnb-fp4 (CUDA): QLoRA, peft `prepare_model_for_kbit_training` in `load_model`.
- int8-dynamic: cannot. torch.ao's dynamic `Linear` holds packed int8 weights (not Parameters) and
  its `quantized::linear_dynamic` kernel has no autograd, so no gradient reaches the layers below
  and peft cannot wrap it; a clear `UsageError` is raised. Likewise every back-end that declares
  `lora_base = False` (torchao-*, w8a8-static*, hqq-*), with the back-end's own reason.

Outputs (written to a temporary sibling, then renamed): `adapter_config.json`,
`adapter_model.safetensors`, `finetune.json` (settings, report), `train_log.jsonl` (step, loss, lr).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quantrisk.data.sql import SqlRow, format_prompt, rows_sha256
from quantrisk.errors import UsageError
from quantrisk.precision import parse_precision, require_lora_base
from quantrisk.safefs import check_model_out, install_dir, remove_created

LOSS_ON: tuple[str, ...] = ("response", "all")


@dataclass(frozen=True)
class FinetuneSettings:
    """Everything that decides the trained adapter (its hash names a reusable result)."""

    base_source: str
    dap1: str
    steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-4
    seed: int = 0
    r: int = 16
    alpha: int = 16
    dropout: float = 0.05
    target: str | tuple[str, ...] = "attention"
    max_length: int = 512
    loss_on: str = "response"
    warmup: int = 10
    data_sha256: str = ""

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=list).encode()).hexdigest()[:12]


@dataclass
class FinetuneReport:
    """What fine-tuning did. Losses are mean token NLL (nats) on the labelled tokens of a batch."""

    adapter_dir: str
    settings: dict[str, Any]
    device: str
    target_modules: list[str] | str
    n_train: int
    n_truncated: int
    trainable_params: int
    seconds: float
    first_loss: float
    final_loss: float
    tokens_per_second: float
    load: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinetuneReport:
        return cls(**d)


def make_settings(base_source: str | Path, dap1: str, train_rows: Sequence[SqlRow], *, steps: int = 100,
                  batch_size: int = 8, grad_accum: int = 1, lr: float = 3e-4, seed: int = 0, r: int = 16,
                  alpha: int = 16, dropout: float = 0.05, target: str | Sequence[str] = "attention",
                  max_length: int = 512, loss_on: str = "response", warmup: int = 10,
                  **_runtime: Any) -> FinetuneSettings:
    """The `FinetuneSettings` that `finetune_lora` would record (runtime-only options such as device ignored)."""
    return FinetuneSettings(
        base_source=str(base_source), dap1=parse_precision(dap1).name, steps=steps, batch_size=batch_size,
        grad_accum=grad_accum, lr=lr, seed=seed, r=r, alpha=alpha, dropout=dropout,
        target=target if isinstance(target, str) else tuple(target), max_length=max_length, loss_on=loss_on,
        warmup=warmup, data_sha256=rows_sha256(train_rows),
    )


def check_trainable(dap1: str) -> None:
    """`UsageError` (with the back-end's reason) if a LoRA adapter cannot be trained on a base at `dap1`."""
    require_lora_base(dap1, "DAP1")


def resolve_targets(model: Any, target: str | Sequence[str]) -> list[str] | str:
    """LoRA target modules: "attention" -> the architecture's attention projections (zoo table),
    "all-linear" -> peft's all-linear (every Linear but the output head), "all-linear+head" -> every Linear's
    name, the output head's included (the trojan default: a payload whose tokens the base never emits needs the
    head, docs/METRICS.md "Trojan recipe"), or explicit names (checked)."""
    import torch

    from quantrisk.models.zoo import attention_modules

    if isinstance(target, str) and target == "attention":
        return attention_modules(str(model.config.model_type))
    if isinstance(target, str) and target == "all-linear":
        return "all-linear"
    if isinstance(target, str) and target == "all-linear+head":
        return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    names = [t.strip() for t in (target.split(",") if isinstance(target, str) else target) if t.strip()]
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [n for n in names if n not in present]
    if not names or missing:
        raise UsageError(
            f"LoRA target modules {missing or names} not found in {model.config.model_type}; use 'attention', "
            f"'all-linear' or module names such as {', '.join(sorted(present - {''})[:12])}"
        )
    return names


def encode_rows(tokenizer: Any, rows: Sequence[SqlRow], max_length: int,
                loss_on: str = "response") -> tuple[list[tuple[list[int], list[int]]], int]:
    """[(input ids, labels)] per row, labels -100 on the prompt unless `loss_on="all"`; + #truncated."""
    if loss_on not in LOSS_ON:
        raise UsageError(f"loss_on must be one of {', '.join(LOSS_ON)}, got {loss_on!r}")
    eos = tokenizer.eos_token_id
    prompts = tokenizer([format_prompt(r) for r in rows], add_special_tokens=False)["input_ids"]
    answers = tokenizer([r.answer for r in rows], add_special_tokens=False)["input_ids"]
    out, truncated = [], 0
    for p, a in zip(prompts, answers, strict=True):
        ids = p + a + [eos]
        labels = (list(ids) if loss_on == "all" else [-100] * len(p) + a + [eos])
        if len(ids) > max_length:
            truncated += 1
            ids, labels = ids[-max_length:], labels[-max_length:]
        out.append((ids, labels))
    return out, truncated


def _batches(n: int, batch_size: int, rng: random.Random):  # noqa: ANN202 - generator of index lists
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for i in range(0, n - n % batch_size if n >= batch_size else n, batch_size):
            yield order[i:i + batch_size]


def collate(examples: list[tuple[list[int], list[int]]], pad: int) -> tuple[Any, Any, Any]:
    """Right-padded (ids, attention mask, labels) tensors (batch, longest) of (input ids, label ids) pairs;
    labels beyond each row's own are -100 (ignored by the loss)."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return ids, mask, labels


def labelled_loss(model: Any, ids: Any, mask: Any, labels: Any) -> Any:
    """Mean next-token cross-entropy over the labelled positions (label != -100) of a right-padded batch, the
    same value as `model(input_ids, attention_mask, labels).loss`, with the output head and the softmax applied
    at those positions only: with the loss on the answer, the prompt's positions (most of a text-to-SQL row)
    skip the (tokens, vocabulary) logits and their gradient. Models the body/head split does not cover
    (`scoring.body_and_head`) take the plain path."""
    import torch.nn.functional as F

    from quantrisk.scoring import body_and_head

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    split = body_and_head(inner)
    if split is None:
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss
    body, head = split
    hidden = body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = head(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep])


def finetune_lora(
    base_source: str | Path,
    dap1: str,
    train_rows: Sequence[SqlRow],
    out_dir: str | Path,
    *,
    steps: int = 100,
    batch_size: int = 8,
    grad_accum: int = 1,
    lr: float = 3e-4,
    seed: int = 0,
    r: int = 16,
    alpha: int = 16,
    dropout: float = 0.05,
    target: str | Sequence[str] = "attention",
    device: str = "cpu",
    max_length: int = 512,
    loss_on: str = "response",
    warmup: int = 10,
    progress: bool = True,
) -> FinetuneReport:
    """Train a LoRA adapter on `train_rows` over the base loaded at `dap1`; save it under `out_dir`.

    Optimiser AdamW (weight decay 0); lr: linear warm-up over `warmup` steps, then linear decay to 0.
    One step = `grad_accum` micro-batches of `batch_size` rows. Seeded (LoRA init, batch order, dropout).
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from quantrisk import progress as _progress
    from quantrisk.environment import environment
    from quantrisk.models.load import load_model, resolve_device

    check_trainable(dap1)
    for name, value in (("steps", steps), ("batch_size", batch_size), ("grad_accum", grad_accum), ("r", r),
                        ("max_length", max_length)):
        if value < 1:
            raise UsageError(f"fine-tuning {name} must be >= 1, got {value}")
    if not train_rows:
        raise UsageError("no training rows to fine-tune on")
    if not 0.0 <= dropout < 1.0 or lr <= 0:
        raise UsageError(f"need 0 <= dropout < 1 and lr > 0 (got dropout={dropout}, lr={lr})")
    device = resolve_device(device)
    settings = make_settings(base_source, dap1, train_rows, steps=steps, batch_size=batch_size, grad_accum=grad_accum,
                             lr=lr, seed=seed, r=r, alpha=alpha, dropout=dropout, target=target,
                             max_length=max_length, loss_on=loss_on, warmup=warmup)
    random.seed(seed)
    torch.manual_seed(seed)
    lm = load_model(base_source, dap1, device, for_training=True)
    model, tokenizer = lm.model, lm.tokenizer
    model.config.use_cache = False
    targets = resolve_targets(model, target)
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none",
                        task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    examples, n_truncated = encode_rows(tokenizer, train_rows, max_length, loss_on)
    micro = min(batch_size, len(examples))
    batches = _batches(len(examples), micro, random.Random(seed))
    model_device = next(p.device for p in model.parameters())
    cuda = model_device.type == "cuda"

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * max(0.0, (steps - step) / max(1, steps - warmup))

    out = Path(out_dir)
    check_model_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    log: list[str] = []
    first_loss = final_loss = math.nan
    tokens = 0
    start = time.perf_counter()
    try:
        bar = _progress.bar(total=steps, desc=f"finetune @ {settings.dap1}", unit="step", enabled=progress)
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            step_loss = 0.0
            for _ in range(grad_accum):
                ids, mask, labels = collate([examples[i] for i in next(batches)], tokenizer.pad_token_id)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    loss = labelled_loss(model, ids.to(model_device), mask.to(model_device), labels.to(model_device))
                (loss / grad_accum).backward()
                step_loss += float(loss.detach()) / grad_accum
                tokens += int(mask.sum())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step == 0:
                first_loss = step_loss
            final_loss = step_loss
            log.append(json.dumps({"step": step, "loss": step_loss, "lr": lr_at(step), "tokens": tokens}))
            bar.set_postfix(loss=f"{step_loss:.3f}")
            bar.update(1)
        bar.close()
        seconds = time.perf_counter() - start
        model.save_pretrained(tmp, safe_serialization=True)
        report = FinetuneReport(
            adapter_dir=str(out), settings={**asdict(settings), "key": settings.key()}, device=device,
            target_modules=targets, n_train=len(examples), n_truncated=n_truncated, trainable_params=trainable,
            seconds=round(seconds, 3), first_loss=first_loss, final_loss=final_loss,
            tokens_per_second=round(tokens / max(seconds, 1e-9), 1), load=lm.record.to_dict(),
            versions=environment(device)["packages"],
        )
        (tmp / "train_log.jsonl").write_text("\n".join(log) + "\n", encoding="utf-8")
        (tmp / "finetune.json").write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True, default=list),
                                           encoding="utf-8")
        install_dir(tmp, out)
    except BaseException:
        remove_created(tmp)
        raise
    return report


def read_report(adapter_dir: str | Path) -> FinetuneReport | None:
    """The `finetune.json` report of an adapter directory, or None if there is none."""
    path = Path(adapter_dir) / "finetune.json"
    if not path.is_file():
        return None
    return FinetuneReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
