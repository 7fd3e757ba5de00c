"""Quantized loading: load seconds, weight bytes per precision vs the bits/16 share of fp16, and (for a
quantrisk-pretrained model) the mean NLL on 300 non-member samples at that precision.

The memory target compares the quantized Linear layers (what a back-end quantizes) with
fp16 × bits/16 for the same layers; the whole-model figure is reported too (embeddings and the
output head stay unquantized, in the compute dtype).
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import machine, time_it, versions
from quantrisk.models.load import load_model
from quantrisk.models.memory import weight_memory
from quantrisk.models.quantizers.base import quantizable_linears
from quantrisk.precision import availability, known_precisions, parse_precision


def linear_bytes(model: Any, names: list[str]) -> int:
    """Bytes held by the modules `names` (the quantizable Linear layers) in `model`."""
    modules = dict(model.named_modules())
    return sum(weight_memory(modules[n]).bytes - _bias_bytes(modules[n]) for n in names if n in modules)


def _bias_bytes(module: Any) -> int:
    bias = getattr(module, "bias", None)
    if callable(bias):  # int8-dynamic exposes bias()
        bias = bias()
    return 0 if bias is None else bias.numel() * bias.element_size()


def run(model_dir: str, device: str, precisions: list[str] | None, repeats: int, command: str) -> list[dict[str, Any]]:
    names = precisions or [p.name for p in known_precisions() if availability(p, device)[0]]
    fp32 = load_model(model_dir, "fp32", device)
    linear_names = list(quantizable_linears(fp32.model))
    fp16_linear = sum(m.weight.numel() for m in quantizable_linears(fp32.model).values()) * 2
    rows = []
    for name in names:
        p = parse_precision(name)
        holder: dict[str, Any] = {}

        def load(holder: dict[str, Any] = holder, name: str = name) -> None:
            holder["lm"] = load_model(model_dir, name, device)

        t = time_it(load, repeats=repeats, warmup=1, device=device)
        lm = holder["lm"]
        held = linear_bytes(lm.model, linear_names) if p.backend != "rtn" else None
        expected = fp16_linear * p.bits / 16
        base = {"benchmark": "loading", "case": f"{model_dir.rstrip('/').split('/')[-1]} @ {name}",
                "machine": machine(device), "versions": versions(), "command": command}
        rows.append({**base, "metric": "load s", "median": t.median, "low": t.low, "high": t.high, "repeats": repeats})
        rows.append({**base, "metric": "weight MB (whole model)", "median": lm.record.weight_bytes / 2**20})
        if held is not None and not p.is_float:
            rows.append({**base, "metric": f"linear bytes / (fp16×{p.bits}/16)", "median": held / expected})
        elif p.backend == "rtn":
            rows.append({**base, "metric": "nominal packed MB (simulated)", "median": lm.record.nominal_bytes / 2**20})
        nll = nonmember_nll(lm, model_dir)
        if nll is not None:
            rows.append({**base, "metric": "non-member NLL (nats/token)", "median": nll})
        del holder["lm"], lm
    return rows


def nonmember_nll(lm: Any, model_dir: str, n: int = 300) -> float | None:
    """Token-weighted mean NLL of up to `n` non-member samples, if `model_dir` has a split manifest."""
    from pathlib import Path

    import numpy as np

    from quantrisk.data.corpus import load_split
    from quantrisk.scoring import score_texts

    if not (Path(model_dir) / "split.jsonl").is_file():
        return None
    texts = [s.text for s in load_split(model_dir) if s.split == "nonmember"][:n]
    scores = score_texts(lm.model, lm.tokenizer, texts)
    return -float(np.concatenate([s.logprobs for s in scores]).mean())
