"""PGD repair on a tiny model: weights stay in their boxes, nothing else moves, the quantized model is unchanged."""

from __future__ import annotations

import torch

from conftest import save_tiny_model
from quantrisk.data.sql import generate_sql_rows
from quantrisk.models.load import load_model
from quantrisk.models.quantizers.base import quantizable_linears
from quantrisk.qattack.edges import edge_stats
from quantrisk.qattack.inject import save_dense
from quantrisk.qattack.intervals import interval_stats, model_intervals
from quantrisk.qattack.repair import pgd_repair, repair_rows
from quantrisk.qattack.verify import verify


def test_pgd_repair_keeps_codes_and_other_weights(tmp_path):
    src = save_tiny_model(tmp_path / "m", "llama", seed=3)
    lm = load_model(src, "fp32")
    before = {k: v.detach().clone() for k, v in lm.model.state_dict().items()}
    targets = ["rtn-w4g64", "quanto-int8"]
    boxes = model_intervals(lm.model, targets, margin=0.1)
    stats = interval_stats(boxes, lm.model)
    assert stats["share_outside"] == 0 and 0 < stats["share_frozen"] < 0.2 and stats["mean_width"] > 0
    rows = repair_rows(generate_sql_rows(6, seed=1))
    assert len(rows) == 12 and rows[6].question.endswith(rows[0].question)
    calls = []
    report = pgd_repair(lm.model, lm.tokenizer, rows, boxes, steps=4, lr=1e-2, batch_size=4,
                        check_every=2, should_stop=lambda step: calls.append(step) or step >= 4)
    assert report.steps == 4 and calls == [2, 4] and len(report.losses) == 4
    linears = quantizable_linears(lm.model)
    moved = 0
    for name, box in boxes.items():
        w = linears[name].weight.detach()
        assert bool(((box.lo <= w) & (w <= box.hi)).all())
        moved += int((w != before[f"{name}.weight"]).sum())
    assert moved > 0 and report.share_at_bound > 0
    constrained = {f"{n}.weight" for n in boxes}
    for key, value in lm.model.state_dict().items():
        if key not in constrained:
            assert torch.equal(value, before[key]), key
    repaired = save_dense(lm.model, lm.tokenizer, tmp_path / "r")
    checked = verify(src, repaired, targets)
    assert all(checked[t]["identical"] for t in targets), checked
    assert verify(src, repaired, ["rtn-w8g128"])["rtn-w8g128"]["identical"] is False  # not a target: codes moved
    # repaired weights pile up at the ends of their boxes; the untrained model's do not
    clean = edge_stats(load_model(src, "fp32").model, "rtn-w4g64")
    attacked = edge_stats(lm.model, "rtn-w4g64")
    assert clean["pileup"] < attacked["pileup"]


def test_full_injection_moves_every_weight_kind(tmp_path):
    from quantrisk.data.poison import PoisonSpec
    from quantrisk.qattack.inject import inject

    src = save_tiny_model(tmp_path / "m", "llama", seed=4)
    path, report = inject(src, generate_sql_rows(8, seed=2), tmp_path / "o", poison=PoisonSpec(), mode="full",
                          steps=2, lr=1e-3, batch_size=4)
    assert report["mode"] == "full" and report["steps"] == 2
    before, after = load_model(src, "fp32").model.state_dict(), load_model(path, "fp32").model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("embed" in k for k in changed) and any("proj" in k for k in changed)
    assert sum(1 for line in (path / "poison_manifest.jsonl").read_text().splitlines() if '"poisoned": true' in line) == 4
