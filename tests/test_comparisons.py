"""Paired comparisons of precisions against the baseline from per-sample rows (quantrisk.comparisons)."""

from __future__ import annotations

import numpy as np
import pytest

from quantrisk.comparisons import baseline_precision, paired_comparisons
from quantrisk.stats import delong_test, holm, roc_auc, tpr_at_fpr


def _rows(model: str, precision: str, scores: dict[str, np.ndarray], y: np.ndarray, seed: str = "0") -> list[dict]:
    return [{"kind": "mi", "model": model, "precision": precision, "seed": seed, "sample_id": f"s{i}", "label": int(y[i]),
             **{a: float(v[i]) for a, v in scores.items()}} for i in range(len(y))]


def test_baseline_precision():
    assert baseline_precision(["int8-dynamic", "fp16", "fp32"]) == "fp32"
    assert baseline_precision(["quanto-int4", "bf16"]) == "bf16"
    assert baseline_precision(["quanto-int4"]) is None


def test_paired_rows_match_the_direct_computation_and_holm_runs_over_the_model():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(80), np.zeros(80)].astype(int)
    base = {"loss": rng.normal(size=160) + y, "zlib": rng.normal(size=160) + 0.5 * y}
    noisy = {a: v + rng.normal(scale=1.5, size=160) for a, v in base.items()}  # a worse scoring of the same samples
    same = {a: v.copy() for a, v in base.items()}
    rows = _rows("m", "fp32", base, y) + _rows("m", "rtn-w2g64", noisy, y) + _rows("m", "int8-dynamic", same, y)
    rows = rows[::-1]  # order does not matter: samples are matched by id
    out = paired_comparisons(rows, ["loss", "zlib"], n_resamples=200)
    get = {(m.name, m.labels["precision"], m.labels["attack"]): m for m in out}
    d = get[("delta_auc", "rtn-w2g64", "loss")]
    assert d.value == pytest.approx(roc_auc(noisy["loss"], y) - roc_auc(base["loss"], y))
    assert d.ci_low <= d.value <= d.ci_high and d.ci_high < 0  # clearly worse
    assert d.labels["baseline"] == "fp32" and d.labels["n"] == "160" and d.labels["seed"] == "0"
    assert get[("delong_p", "rtn-w2g64", "loss")].value == pytest.approx(delong_test(noisy["loss"], base["loss"], y).p_value)
    t = get[("delta_tpr@1%fpr", "rtn-w2g64", "loss")]
    assert t.value == pytest.approx(tpr_at_fpr(noisy["loss"], y, 0.01) - tpr_at_fpr(base["loss"], y, 0.01))
    assert get[("delta_auc", "int8-dynamic", "zlib")].value == 0 and get[("delong_p", "int8-dynamic", "zlib")].value == 1
    keys = [("rtn-w2g64", "loss"), ("rtn-w2g64", "zlib"), ("int8-dynamic", "loss"), ("int8-dynamic", "zlib")]
    raw = [get[("delong_p", *k)].value for k in keys]
    assert [get[("delong_p_holm", *k)].value for k in keys] == pytest.approx(holm(raw))  # one family per model
    assert not any(m.labels["precision"] == "fp32" for m in out)


def test_only_shared_samples_are_paired_and_groups_without_baseline_are_skipped():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(30), np.zeros(30)].astype(int)
    s = {"loss": rng.normal(size=60) + y}
    rows = _rows("m", "fp32", s, y) + _rows("m", "quanto-int4", s, y)[5:]  # 5 members unscored at int4
    rows += _rows("other", "quanto-int4", s, y)  # no baseline for this model
    out = paired_comparisons(rows, ["loss"], n_resamples=50)
    assert {m.labels["model"] for m in out} == {"m"}
    assert next(m for m in out if m.name == "delta_auc").labels["n"] == "55"
