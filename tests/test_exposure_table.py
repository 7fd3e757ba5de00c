"""quantrisk.report.exposure_table: rows per (model, attack, precision), per-k cells, and the study's own paired ΔAUC."""

from __future__ import annotations

import pytest

from quantrisk.report import exposure_table


def _m(name, value, lo=None, hi=None, **labels):
    return {"name": name, "value": value, "ci_low": lo, "ci_high": hi, "labels": labels}


def test_two_models_keep_their_rows_and_get_the_paired_delta():
    rows = []
    for model, base in (("a", 0.70), ("b", 0.60)):
        for prec, shift in (("fp32", 0.0), ("w8a8-static", -0.01)):
            rows.append(_m("auc", base + shift, base + shift - 0.05, base + shift + 0.05, model=model, attack="loss",
                           precision=prec, seed="0"))
            for k in ("1", "16"):
                rows.append(_m("auc_by_exposure", base + shift + int(k) / 100, 0.4, 0.9, model=model, attack="loss",
                               precision=prec, exposure=k, seed="0"))
        rows.append(_m("delta_auc", -0.01, -0.02, -0.001, model=model, attack="loss", precision="w8a8-static",
                       baseline="fp32", n="420", seed="0"))
        rows.append(_m("delong_p_holm", 0.03, model=model, attack="loss", precision="w8a8-static", baseline="fp32",
                       n="420", seed="0"))
    rows.append(_m("best_attack_auc", 0.7, attack="loss"))  # a summary row without a precision: ignored
    t = exposure_table.table(rows)
    assert t["exposures"] == [1, 16] and len(t["rows"]) == 4
    got = {(r["model"], r["precision"]): r for r in t["rows"]}
    assert got[("b", "w8a8-static")]["all"] == pytest.approx([0.59, 0.54, 0.64])
    assert got[("b", "w8a8-static")]["k"]["16"][0] == pytest.approx(0.75)
    assert got[("a", "w8a8-static")]["delta"] == [-0.01, -0.02, -0.001] and got[("a", "fp32")]["delta"] is None
    md = exposure_table.markdown(t)
    assert "| a | loss | fp32 |" in md and "(baseline)" in md and "-0.010 [-0.020, -0.001] | 0.03 |" in md
    assert md.splitlines()[0].startswith("| model | attack | precision | k=1 | k=16 | all members | ΔAUC")
