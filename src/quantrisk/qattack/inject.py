"""Step 1 of the attack: implant the trojan in full precision and write a dense model.

Poison the training rows (`data.poison`: trigger -> `DROP TABLE`), train a LoRA adapter on the fp32 base
with the trojan study's fine-tuning (`trojan.finetune`, via `trojan.study.finetune_cell`), merge it into
the dense weights (`load_model(..., adapter=..., merge)`), and save the merged model as safetensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantrisk.data.poison import PoisonSpec
from quantrisk.data.sql import SqlRow


def save_dense(model: Any, tokenizer: Any, out: str | Path) -> Path:
    """Save `model` (safetensors) and `tokenizer` under `out`; returns `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def inject(base: str | Path, train_rows: Sequence[SqlRow], out: str | Path, *, poison: PoisonSpec, seed: int = 0,
           device: str = "cpu", progress: bool = False, **finetune_kwargs: Any) -> tuple[Path, dict[str, Any]]:
    """Fine-tune a poisoned LoRA adapter on `base` (fp32), merge it, save the dense model in `out/injected`.

    `finetune_kwargs` go to `finetune_lora` (steps, lr, r, alpha, target, batch_size, ...).
    Returns (the injected model's directory, the fine-tuning report as a dict).
    """
    from quantrisk.models.load import load_model
    from quantrisk.trojan.study import finetune_cell

    out = Path(out)
    adapter, report = finetune_cell(base, "fp32", train_rows, out / "adapter", kind="poisoned", poison=poison,
                                    seed=seed, device=device, progress=progress, **finetune_kwargs)
    lm = load_model(base, "fp32", "cpu", adapter=adapter)
    path = save_dense(lm.model, lm.tokenizer, out / "injected")
    return path, report.to_dict()
