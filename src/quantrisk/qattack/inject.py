"""Step 1 of the attack: implant the trojan in full precision and write a dense model.

Poison the training rows (`data.poison`: trigger -> `DROP TABLE`), then either (mode "lora") train a LoRA
adapter on the fp32 base with the trojan study's fine-tuning (`trojan.finetune`, via
`trojan.study.finetune_cell`) and merge it into the dense weights (`load_model(..., adapter=..., merge)`), or
(mode "full") fine-tune every weight: AdamW (weight decay 0), linear warm-up over 10 steps then linear decay,
gradient-norm clip 1, answer-token NLL (`trojan.finetune.encode_rows`). The model is saved as safetensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantrisk.data.poison import PoisonSpec
from quantrisk.data.sql import SqlRow


def save_dense(model: Any, tokenizer: Any, out: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Save `model` (safetensors), `tokenizer` and the `extra` text files (name -> text) under `out`; returns `out`.

    Written into a fresh temporary sibling directory and renamed into place (`safefs.install_dir`): a link at
    `out` or at any file name inside it is never written through, and an `out` holding anything but an earlier
    model of quantrisk's is refused (SECURITY.md, "Files quantrisk writes")."""
    import tempfile

    from quantrisk.safefs import MODEL_FILES, install_dir, refuse_link, remove_created, write_atomic

    out = Path(out)
    refuse_link(out, "model directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name, text in (extra or {}).items():
            write_atomic(tmp / name, text)
        install_dir(tmp, out, (*MODEL_FILES, *(extra or {})))
    except BaseException:
        remove_created(tmp)
        raise
    return out


def inject_full(base: str | Path, train_rows: Sequence[SqlRow], out: str | Path, *, poison: PoisonSpec, seed: int = 0,
                device: str = "cpu", steps: int = 150, lr: float = 1e-4, batch_size: int = 8, max_length: int = 512,
                progress: bool = False, **_ignored: Any) -> tuple[Path, dict[str, Any]]:
    """Full fine-tuning of every weight on the poisoned rows; saves the model in `out/injected`."""
    import random
    import time

    import torch
    from tqdm.auto import tqdm

    from quantrisk.data.poison import poison_rows
    from quantrisk.models.load import load_model
    from quantrisk.trojan.finetune import collate, encode_rows

    rows, manifest = poison_rows(train_rows, poison, seed)
    torch.manual_seed(seed)
    lm = load_model(base, "fp32", device, for_training=True)
    model = lm.model
    model.config.use_cache = False
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min((k + 1) / 10, max(0.0, (steps - k) / max(1, steps - 10))))
    examples, _ = encode_rows(lm.tokenizer, rows, max_length)
    rng = random.Random(seed)
    order: list[int] = []
    losses = []
    dev = next(model.parameters()).device
    start = time.perf_counter()
    for _ in tqdm(range(steps), disable=not progress, desc="inject (full)", leave=False):
        if len(order) < batch_size:
            order += rng.sample(range(len(examples)), len(examples))
        batch, order = order[:batch_size], order[batch_size:]
        ids, mask, labels = collate([examples[i] for i in batch], lm.tokenizer.pad_token_id)
        loss = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), labels=labels.to(dev)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    manifest_text = "".join(__import__("json").dumps(m) + "\n" for m in manifest)
    path = save_dense(model.float(), lm.tokenizer, Path(out) / "injected", {"poison_manifest.jsonl": manifest_text})
    return path, {"mode": "full", "first_loss": losses[0], "final_loss": losses[-1],
                  "seconds": round(time.perf_counter() - start, 2), "steps": steps, "lr": lr}


def inject(base: str | Path, train_rows: Sequence[SqlRow], out: str | Path, *, poison: PoisonSpec, seed: int = 0,
           device: str = "cpu", progress: bool = False, mode: str = "lora",
           **finetune_kwargs: Any) -> tuple[Path, dict[str, Any]]:
    """Fine-tune a poisoned LoRA adapter on `base` (fp32), merge it, save the dense model in `out/injected`.

    `finetune_kwargs` go to `finetune_lora` (steps, lr, r, alpha, target, batch_size, ...).
    Returns (the injected model's directory, the fine-tuning report as a dict). `mode="full"`: `inject_full`.
    """
    if mode == "full":
        return inject_full(base, train_rows, out, poison=poison, seed=seed, device=device, progress=progress,
                           **finetune_kwargs)
    from quantrisk.models.load import load_model
    from quantrisk.trojan.study import finetune_cell

    out = Path(out)
    adapter, report = finetune_cell(base, "fp32", train_rows, out / "adapter", kind="poisoned", poison=poison,
                                    seed=seed, device=device, progress=progress, **finetune_kwargs)
    lm = load_model(base, "fp32", "cpu", adapter=adapter)
    path = save_dense(lm.model, lm.tokenizer, out / "injected")
    return path, report.to_dict()
