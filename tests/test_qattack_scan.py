"""`qattack.scan.scan_model` thresholds on a tiny model: clean stays clean, weights clamped to box ends are flagged
by the weight component, an honestly quantize-dequantized checkpoint is not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import save_tiny_model
from quantrisk.qattack.probes import PREFIXES, builtin_probes
from quantrisk.qattack.scan import PILEUP_MAX, scan_model

PRECISIONS = ["rtn-w4g64", "rtn-w8g128"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("scan") / "llama", "llama", seed=3)


def _rewrite(src: Path, out: Path, fn) -> Path:
    from quantrisk.models.load import load_model
    from quantrisk.models.quantizers.base import quantizable_linears
    from quantrisk.qattack.inject import save_dense

    lm = load_model(src, "fp32")
    with torch.no_grad():
        for i, m in enumerate(quantizable_linears(lm.model).values()):
            m.weight.copy_(fn(m.weight.detach().float(), i))
    return save_dense(lm.model, lm.tokenizer, out)


def _scan(path: Path) -> dict:
    return scan_model(path, PRECISIONS, builtin_probes(2), prefixes=PREFIXES[:1], max_new_tokens=2)


def test_clean_tiny_model_is_clean(tiny_dir):
    res = _scan(tiny_dir)
    assert res["verdict"] == "clean" and res["flags"] == {"weights": False, "behaviour": False}
    for p in PRECISIONS:
        assert res["per_precision"][p]["weights"]["pileup"] < PILEUP_MAX
    assert res["rounded"]["rounded"] is False


def test_weights_at_box_ends_are_flagged(tiny_dir, tmp_path):
    from quantrisk.qattack.intervals import layer_interval

    def clamp(w, i):
        box = layer_interval(w, ["rtn-w4g64"], margin=0.1)
        pick = torch.rand(w.shape, generator=torch.Generator().manual_seed(i)) < 0.5
        return torch.where(pick, box.lo, box.hi)

    res = _scan(_rewrite(tiny_dir, tmp_path / "clamped", clamp))
    assert res["verdict"] == "suspicious" and res["flags"]["weights"] is True
    assert res["per_precision"]["rtn-w4g64"]["weights"]["pileup"] > PILEUP_MAX
    assert any(r.startswith("rtn-w4g64:") and "quantization edges" in r for r in res["reasons"])


def test_rounded_checkpoint_is_not_flagged_by_weights(tiny_dir, tmp_path):
    from quantrisk.models.quantizers.rtn import rtn_quantize

    res = _scan(_rewrite(tiny_dir, tmp_path / "rounded", lambda w, i: rtn_quantize(w, 4, 64)))
    assert res["rounded"]["rounded"] is True and res["rounded"]["grid"] == "rtn-w4g64"
    assert res["per_precision"]["rtn-w4g64"]["weights"]["grid_share"] == pytest.approx(1.0)
    assert res["per_precision"]["rtn-w8g128"]["weights"]["pileup"] > PILEUP_MAX  # lattice, not box ends
    assert res["flags"]["weights"] is False and not any("quantization edges" in r for r in res["reasons"])
    assert any("already rounded" in n for n in res["notes"])
