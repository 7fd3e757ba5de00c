"""Importance matrix for llama.cpp's quantizer, computed in torch on calibration samples.

For every Linear layer W (out × in) the vector I_j = (1/T) Σ_t x_{t,j}² over the T calibration tokens x_t
that enter it: what llama.cpp's `llama-imatrix` accumulates (sum of squared activations per input column,
divided by the count when quantizing). llama.cpp's k-/i-quant search then minimises Σ_j I_j (w_j - ŵ_j)²
per row instead of the plain squared error (llama.cpp PR #4861). Keys are the GGUF tensor names; the
row permutations of the GGUF layout (llama q/k, gpt-neox qkv) reorder rows, not input columns, so I is
unchanged by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def importance_matrix(model: Any, calibration: Sequence[Any]) -> dict[str, np.ndarray]:
    """GGUF tensor name -> float32 I (in,) for every Linear of `model`, from the token batches `calibration`."""
    import torch

    from quantrisk.models.quantizers.gguf_convert import tensor_names

    names = tensor_names(model)
    sums: dict[str, Any] = {}
    counts: dict[str, int] = {}
    hooks = []

    def hook(key: str) -> Any:
        def record(_module: Any, args: tuple[Any, ...]) -> None:
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            sums[key] = sums.get(key, 0) + (x * x).sum(0)
            counts[key] = counts.get(key, 0) + x.shape[0]
        return record

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and f"{name}.weight" in names:
            hooks.append(module.register_forward_pre_hook(hook(names[f"{name}.weight"])))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for ids in calibration:
                model(input_ids=ids.to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {k: (sums[k] / counts[k]).cpu().numpy().astype(np.float32) for k in sums if counts[k] > 0}
