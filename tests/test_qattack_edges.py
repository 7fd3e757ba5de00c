"""Edge-distance statistic of the scan: flat for weights that ignore the grid, a spike at the margin after clamping."""

from __future__ import annotations

import pytest
import torch

from quantrisk.qattack.edges import edge_distances
from quantrisk.qattack.intervals import layer_interval


def test_edge_distance_known_answer():
    # rtn-w3g16, one row [0.6, -0.2, 0.13, 0.04] (+ zero padding): s = 0.2; 0.6 frozen (absmax);
    # -0.2 sits on a code (d = 0.5), 0.13 is 0.03 above its edge 0.1 (d = 0.15), 0.04 is 0.06 below 0.1 (d = 0.3)
    d = edge_distances(torch.tensor([[0.6, -0.2, 0.13, 0.04]]), "rtn-w3g16")
    assert d.tolist() == pytest.approx([0.5, 0.15, 0.3], abs=1e-6)


def test_uniform_vs_clamped_pileup():
    from quantrisk.qattack.edges import BINS

    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(0)) * 0.02
    d = edge_distances(w, "rtn-w4g64")
    share = torch.histc(d, bins=BINS, min=0, max=0.5) / d.numel()
    assert float(share.max()) * BINS < 1.5  # flat within sampling noise
    assert float((d < 0.05).float().mean()) == pytest.approx(0.1, abs=0.02)
    box = layer_interval(w, ["rtn-w4g64"], margin=0.1)
    clamped = torch.where(torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) < 0.5, box.lo, box.hi)
    dc = edge_distances(clamped, "rtn-w4g64")
    share_c = torch.histc(dc, bins=BINS, min=0, max=0.5) / dc.numel()
    assert float(share_c.max()) * BINS > 10


def test_noise_defence_scales_with_step_and_variants():
    from conftest import save_tiny_model  # noqa: F401 - fixture helpers live there
    from quantrisk.qattack.defence import add_noise, rerounding_variants

    lin = torch.nn.Linear(128, 16, bias=False)
    model = torch.nn.Sequential(lin, torch.nn.Linear(16, 4))  # the last Linear is no output head here
    model.get_output_embeddings = lambda: model[1]  # type: ignore[attr-defined]
    before = lin.weight.detach().clone()
    from quantrisk.qattack.constraints import encode

    step = encode(before, "rtn-w4g64").step
    add_noise(model, "rtn-w4g64", 0.5, seed=3)
    z = (lin.weight.detach() - before) / step
    assert float(z.std()) == pytest.approx(0.5, rel=0.1) and abs(float(z.mean())) < 0.05
    assert rerounding_variants("rtn-w4g64") == ["rtn-w4g32", "rtn-w4g128", "rtn-w5g64"]
    assert rerounding_variants("quanto-int8") == ["rtn-w8g128"]
