"""Capability (issue 25): every CPU weight back-end changes the weights it claims to — no silent fp32 fallback.

tests/test_load.py checks the bytes held shrink for quanto / int8-dynamic and that the NLL drifts less at 8 bits than at
2; neither fails if a back-end quietly kept the fp32 weights (drift 0 passes both). Here, for each back-end, the
weight the loaded model computes with (dequantized from what the back-end stores) must (1) differ from the fp32
weight, (2) lie on a grid of at most 2^bits values in every 64-element run of a row (64 divides every group size
used: 32 is checked at its own size, 64, 128 and per row), and (3) take the bytes the back-end says it holds:
fewer than fp32 where it stores codes, exactly fp32 for the RTN simulator (which holds the dequantized fp32 weight).
"""

from __future__ import annotations

import pytest
import torch

from quantrisk.models.load import load_model
from quantrisk.precision import availability, parse_precision

LAYER = "model.layers.0.mlp.down_proj"
CASES = ["rtn-w4g64", "rtn-w2g32", "rtn-w8g128", "quanto-int8", "quanto-int4", "quanto-int2", "int8-dynamic",
         "torchao-int8wo", "hqq-w4g64"]


def _computed_weight(module) -> torch.Tensor:
    """The weight the module multiplies by, as fp32, from what the back-end stores."""
    if hasattr(module, "qweight"):  # optimum-quanto QLinear
        return module.qweight.dequantize().float()
    if hasattr(module, "dequantize"):  # hqq HQQLinear
        return module.dequantize().float()
    w = module.weight() if callable(module.weight) and not isinstance(module.weight, torch.Tensor) else module.weight
    return (w.dequantize() if hasattr(w, "dequantize") else w).detach().float()


def _most_values_per_run(w: torch.Tensor, run: int) -> int:
    runs = w.reshape(w.shape[0], -1, run).reshape(-1, run)
    return max(len(torch.unique(r)) for r in runs)


@pytest.mark.parametrize("name", CASES)
def test_backend_changes_the_weights_onto_its_grid(tiny_model_dirs, name):
    ok, why = availability(name, "cpu")
    if not ok:
        pytest.skip(why)
    d = tiny_model_dirs["llama"]
    fp = load_model(d, "fp32")
    w0 = dict(fp.model.named_modules())[LAYER].weight.detach().float()
    lm = load_model(d, name)
    w = _computed_weight(dict(lm.model.named_modules())[LAYER])
    p = parse_precision(name)
    bits = p.bits
    assert w.shape == w0.shape
    assert not torch.equal(w, w0), f"{name}: the weights are the fp32 ones (silent fallback)"
    run = 32 if (p.group_size or 64) < 64 else 64
    assert _most_values_per_run(w0, run) == run  # random fp32 weights: all distinct
    assert _most_values_per_run(w, run) <= 2 ** bits, name
    assert (w - w0).abs().max() <= w0.abs().max() / 2 ** (bits - 2), name  # rounded, not replaced
    if p.backend == "rtn":
        assert lm.record.weight_bytes == fp.record.weight_bytes  # the simulator holds dequantized fp32
    else:
        assert lm.record.weight_bytes < fp.record.weight_bytes, name
