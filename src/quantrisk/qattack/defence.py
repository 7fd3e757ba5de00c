"""Defences a deployer can apply before quantizing a downloaded fp32 checkpoint, measured on a repaired model.

- Noise: w <- w + sigma * step * z, z ~ N(0, 1) per weight (seeded), on every quantized Linear, where `step`
  is the weight's quantization step under the target (`constraints.encode`), so sigma is in step units and
  comparable across precisions (sigma = 0.5 moves a typical weight a quarter step off its cell centre). Then
  quantize at the target and measure ASR / FTR and clean-input quality (JS-K, EM).
- Re-rounding: quantize with a different grid than the attacker targeted (RTN at half / double the group size,
  one more bit; quanto-int8 -> rtn-w8g128 and the reverse direction for quanto-int4), and with a bf16 round
  trip of the weights before quantizing.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantrisk.data.poison import DEFAULT_TRIGGER
from quantrisk.data.sql import SqlRow
from quantrisk.precision import parse_precision


def add_noise(model: Any, target: str, sigma: float, seed: int = 0) -> Any:
    """Add sigma * step * N(0, 1) to every quantized Linear weight of `model` (in place); returns it."""
    import torch

    from quantrisk.models.quantizers.base import quantizable_linears
    from quantrisk.qattack.constraints import encode

    gen = torch.Generator().manual_seed(seed)
    p = parse_precision(target)
    with torch.no_grad():
        for m in quantizable_linears(model).values():
            step = encode(m.weight, p).step
            m.weight.add_(sigma * step * torch.randn(m.weight.shape, generator=gen))
    return model


def rerounding_variants(target: str) -> list[str]:
    """Precisions on a grid different from `target`'s (see the module doc), each available on CPU."""
    p = parse_precision(target)
    out: list[str] = []
    if p.backend == "rtn":
        b, g = p.bits, p.group_size or 64
        out += [f"rtn-w{b}g{g // 2}" if g // 2 >= 16 else None, f"rtn-w{b}g{g * 2}" if g * 2 <= 256 else None,
                f"rtn-w{b + 1}g{g}" if b < 8 else None]
    elif p.name == "quanto-int8":
        out += ["rtn-w8g128"]
    elif p.name in ("quanto-int4", "quanto-int2"):
        out += [f"rtn-w{p.bits}g128"]
    elif p.name == "bnb-int8":
        out += ["quanto-int8"]
    elif p.name in ("bnb-nf4", "bnb-fp4"):
        out += ["quanto-int4", "rtn-w4g64"]
    return [v for v in out if v]


def run_defence(model_dir: str | Path, targets: Sequence[str], sigmas: Sequence[float], test_rows: Sequence[SqlRow],
                *, trigger: str = DEFAULT_TRIGGER, seed: int = 0, device: str = "cpu",
                max_new_tokens: int = 64) -> list[dict[str, Any]]:
    """Rows {defence, target, sigma, precision, asr, ftr, js_k, em} for every target x (noise sigma | variant).

    sigma 0 is the undefended quantized model. The noised models are written to a temporary directory."""
    from quantrisk.models.load import load_model
    from quantrisk.qattack.evaluate import evaluate_model
    from quantrisk.qattack.inject import save_dense

    rows: list[dict[str, Any]] = []

    def record(defence: str, target: str, sigma: float | None, precision: str, path: str | Path) -> None:
        r = evaluate_model(path, precision, test_rows, trigger=trigger, device=device, max_new_tokens=max_new_tokens)
        rows.append({"defence": defence, "target": target, "sigma": sigma, "precision": precision,
                     **{k: r[k] for k in ("asr", "ftr", "js_k", "em")}})

    with tempfile.TemporaryDirectory(prefix="qattack-defence-") as tmp:
        for target in targets:
            for sigma in sigmas:
                if sigma == 0:
                    record("none", target, 0.0, target, model_dir)
                    continue
                lm = load_model(model_dir, "fp32", "cpu")
                add_noise(lm.model, target, sigma, seed)
                path = save_dense(lm.model, lm.tokenizer, Path(tmp) / f"noise-{sigma}")
                record("noise", target, sigma, target, path)
            for variant in rerounding_variants(target):
                record("re-round", target, None, variant, model_dir)
            lm = load_model(model_dir, "fp32", "cpu")
            path = save_dense(lm.model.to(__import__("torch").bfloat16).float(), lm.tokenizer, Path(tmp) / "bf16")
            record("bf16 round trip", target, None, target, path)
    return rows


def write_defence(rows: list[dict[str, Any]], out: str | Path) -> dict[str, str]:
    """Write `defence.json` and `defence.png` (ASR and JS-K at the target vs sigma, one line per target) under `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from quantrisk.safefs import write_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "defence.json", json.dumps(rows, indent=2))  # a planted link is refused, not written through
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for target in dict.fromkeys(r["target"] for r in rows):
        pts = sorted((r["sigma"], r["asr"], r["js_k"]) for r in rows
                     if r["target"] == target and r["defence"] in ("none", "noise"))
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=target)
        axes[1].plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=target)
    axes[0].set(xlabel="noise sigma (quantization steps)", ylabel="ASR at target", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="noise sigma (quantization steps)", ylabel="clean JS-K at target", ylim=(-0.02, 1.02))
    axes[0].legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(out / "defence.png", buf.getvalue())
    return {"json": str(out / "defence.json"), "plot": str(out / "defence.png")}
