"""Fidelity of the two GGUF paths: llama.cpp runtime vs gguf-py-dequantized torch vs the fp32 model.

One GGUF file per precision (`quantize_to_gguf`), evaluated three ways on the same texts: fp32 torch (P),
the file dequantized into torch (D), the file run by llama.cpp (R). For each pair (A, B) over every
scored position i of every text (next-token distributions p_A, p_B over the vocabulary):

- KL(A‖B) = mean_i Σ_v p_A(v) (log p_A(v) − log p_B(v))  (nats; what `llama-perplexity --kl-divergence` reports
  with A = the full-precision model);
- top-1 agreement = mean_i [argmax p_A = argmax p_B];
- Spearman ρ of the per-text MI scores: the LOSS score (mean log p of the text's tokens, Yeom et al. 2018)
  and Min-K% (mean of the lowest 20% token log-probs, Shi et al. 2024) computed under A and under B.

Plus each model's NLL (mean −log p of the scored tokens, nats/token). D vs R isolates llama.cpp's
arithmetic (quantized activations in its dot products); P vs D the weights' quantization error.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MODELS = ("fp", "dequantized", "runtime")
PAIRS = (("fp", "dequantized"), ("fp", "runtime"), ("dequantized", "runtime"))


@dataclass
class FidelityRow:
    """Fidelity of one precision: per-model NLL, per-pair KL / top-1 / Spearman ρ, and the file's facts."""

    precision: str
    nll: dict[str, float]
    kl: dict[str, float]
    top1: dict[str, float]
    spearman_loss: dict[str, float]
    spearman_mink: dict[str, float]
    bits_per_weight: float
    file_bytes: int
    n_texts: int
    n_positions: int

    def flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {"precision": self.precision, "bits_per_weight": self.bits_per_weight,
                               "file_bytes": self.file_bytes, "n_texts": self.n_texts, "n_positions": self.n_positions}
        for m, v in self.nll.items():
            out[f"nll_{m}"] = v
        for name in ("kl", "top1", "spearman_loss", "spearman_mink"):
            for pair, v in getattr(self, name).items():
                out[f"{name}_{pair}"] = v
        return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    x = logits.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def kl_divergence(logp_a: np.ndarray, logp_b: np.ndarray) -> np.ndarray:
    """KL(A‖B) per row from log-probabilities (nats)."""
    return (np.exp(logp_a) * (logp_a - logp_b)).sum(-1)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan when either side is constant."""
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def min_k(token_logprobs: np.ndarray, k: float = 0.2) -> float:
    """Mean of the lowest ceil(k·n) token log-probs."""
    n = max(1, int(np.ceil(k * token_logprobs.size)))
    return float(np.sort(token_logprobs)[:n].mean())


def _torch_logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def compare(models: dict[str, Any], sequences: Sequence[Sequence[int]]) -> dict[str, Any]:
    """The fidelity statistics of `models` (name -> a causal LM whose `forward` gives logits) on token sequences."""
    logps: dict[str, list[np.ndarray]] = {m: [] for m in models}
    for ids in sequences:
        for name, model in models.items():
            logps[name].append(log_softmax(_torch_logits(model, list(ids))[:-1]))
    targets = [np.asarray(ids[1:]) for ids in sequences]
    tok_lp = {m: [lp[np.arange(len(t)), t] for lp, t in zip(logps[m], targets, strict=True)] for m in models}
    out: dict[str, Any] = {"nll": {m: -float(np.concatenate(tok_lp[m]).mean()) for m in models},
                           "kl": {}, "top1": {}, "spearman_loss": {}, "spearman_mink": {}}
    for a, b in PAIRS:
        if a not in models or b not in models:
            continue
        key = f"{a}_vs_{b}"
        la, lb = np.concatenate(logps[a]), np.concatenate(logps[b])
        out["kl"][key] = float(kl_divergence(la, lb).mean())
        out["top1"][key] = float((la.argmax(-1) == lb.argmax(-1)).mean())
        out["spearman_loss"][key] = spearman([x.mean() for x in tok_lp[a]], [x.mean() for x in tok_lp[b]])
        out["spearman_mink"][key] = spearman([min_k(x) for x in tok_lp[a]], [min_k(x) for x in tok_lp[b]])
    out["n_positions"] = int(sum(len(t) for t in targets))
    return out


def gguf_fidelity(model: Any, tokenizer: Any, precision: str, texts: Sequence[str], *,
                  calibration: Sequence[Any] | None = None, max_tokens: int = 256) -> FidelityRow:
    """Quantize fp32 `model` once to GGUF `precision` and compare fp / dequantized / runtime on `texts`."""
    import shutil

    from quantrisk.models.quantizers.gguf import quantize_to_gguf
    from quantrisk.models.quantizers.gguf_convert import load_gguf_weights
    from quantrisk.models.quantizers.gguf_runtime import LlamaCppLM

    model.eval()
    path, info = quantize_to_gguf(model, tokenizer, precision, calibration)
    try:
        dq = load_gguf_weights(copy.deepcopy(model), path)
        runtime = LlamaCppLM(path, model.config, info=info)
        seqs = [list(ids)[:max_tokens] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]
                if len(ids) >= 2]
        stats = compare({"fp": model, "dequantized": dq, "runtime": runtime}, seqs)
        del runtime
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    return FidelityRow(precision=str(precision), nll=stats["nll"], kl=stats["kl"], top1=stats["top1"],
                       spearman_loss=stats["spearman_loss"], spearman_mink=stats["spearman_mink"],
                       bits_per_weight=info["bits_per_weight"], file_bytes=info["file_bytes"], n_texts=len(seqs),
                       n_positions=stats["n_positions"])
