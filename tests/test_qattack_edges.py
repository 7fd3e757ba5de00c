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


def test_grid_fit_known_answer():
    from quantrisk.qattack.edges import grid_fit

    # rtn-w3g4 (qmax 3): s = 0.6 / 3 = 0.2; 0.6 sets the scale (left out), 0.0 is left out, 0.2 and -0.4 are on
    # points (codes 1, -2), 0.13 is not: 2 of 3
    w = torch.tensor([[0.6, 0.2, -0.4, 0.0, 0.13, 0.0, 0.0, 0.0]])
    assert grid_fit(w, 3, 8) == (2, 3)
    assert grid_fit(w, 2, 8) == (0, 3)  # qmax 1: s = 0.6, only 0 and +-0.6 are points


def test_rounded_checkpoint_is_on_the_grid_not_at_box_ends():
    from quantrisk.models.quantizers.rtn import rtn_quantize
    from quantrisk.qattack.edges import edge_stats, rounded_grid

    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(256, 64, bias=False)
    model = torch.nn.Sequential(lin, torch.nn.Linear(64, 4))
    model.get_output_embeddings = lambda: model[1]  # type: ignore[attr-defined]
    with torch.no_grad():
        lin.weight.copy_(torch.randn(64, 256, generator=g) * 0.02)
    clean = edge_stats(model, "rtn-w4g64")
    assert clean["pileup"] < 1.5 and clean["grid_share"] < 0.01
    assert rounded_grid(model)["rounded"] is False
    with torch.no_grad():
        lin.weight.copy_(rtn_quantize(lin.weight, 4, 64))
    on = edge_stats(model, "rtn-w4g64")
    # every movable weight sits on a code (d = 1/2): counted as on the grid, not as a pile-up at a box end
    assert on["grid_share"] == pytest.approx(1.0) and on["pileup"] == 0.0
    assert on["pileup_all"] == pytest.approx(50.0)  # counting every weight, all sit in the last bin: a false pile-up
    r = rounded_grid(model)
    assert r["rounded"] is True and r["grid"] == "rtn-w4g64" and r["share"] == pytest.approx(1.0)
    # at another grid the rounded weights fall on a lattice: a pile-up that is not box ends
    assert edge_stats(model, "rtn-w8g128")["pileup"] > 1.5
