"""The privacy study's cross-cell numbers, computed once by the privacy-summary cell (known answers)."""

from __future__ import annotations

import pytest

from quantrisk.privacy.summary import best_attack, summarize
from quantrisk.results import MetricRow


def rows(points: list[tuple[str, str, float, float, float]]) -> list[MetricRow]:
    """(precision, seed, codebleu, zlib AUC, loss AUC) -> metric rows as privacy cells store them."""
    out = []
    for prec, seed, cb, zlib, loss in points:
        lab = {"model": "m", "precision": prec, "seed": seed}
        out += [MetricRow("auc", zlib, {**lab, "attack": "zlib"}), MetricRow("auc", loss, {**lab, "attack": "loss"}),
                MetricRow("codebleu", cb, lab)]
    return out


def test_best_attack_and_correlation_average_seeds_per_point():
    r = rows([("fp32", "0", 0.30, 0.82, 0.7), ("fp32", "1", 0.30, 0.78, 0.7), ("quanto-int8", "0", 0.25, 0.70, 0.6),
              ("rtn-w2g64", "0", 0.10, 0.55, 0.5)])
    assert best_attack(r) == ("zlib", pytest.approx((0.82 + 0.78 + 0.70 + 0.55) / 4))
    s = summarize(r)
    got = {m.name: m for m in s.metrics}
    assert got["best_attack_auc"].labels == {"attack": "zlib"}
    # points (0.30, 0.80), (0.25, 0.70), (0.10, 0.55): Pearson r = 0.0258333 / sqrt(0.0216667 * 0.0316667) = 0.98624
    assert got["pearson_r"].value == pytest.approx(0.98624, abs=1e-4) and got["pearson_r"].labels["n"] == "3"
    assert got["spearman_r"].value == pytest.approx(1.0)


def test_too_few_points_and_no_variation_are_counted_not_guessed():
    two = summarize(rows([("fp32", "0", 0.3, 0.8, 0.7), ("rtn-w2g64", "0", 0.1, 0.6, 0.5)]))
    assert two.skipped == {"quality-risk correlation: needs 3 or more precisions, got 2": 1}
    assert [m.name for m in two.metrics] == ["best_attack_auc"]
    flat = summarize(rows([("fp32", "0", 0.0, 0.8, 0.7), ("int8-dynamic", "0", 0.0, 0.7, 0.5),
                           ("rtn-w2g64", "0", 0.0, 0.6, 0.5)]))
    assert flat.skipped == {"pearson correlation: a correlation needs x and y that vary": 1,
                            "spearman correlation: a correlation needs x and y that vary": 1}
    assert summarize([]).skipped == {"best attack: no AUC in the privacy cells": 1}


def test_paired_comparisons_come_from_the_summary_too():
    samples = [{"kind": "mi", "model": "m", "precision": p, "seed": 0, "sample_id": f"s{i}", "label": i % 2,
                "zlib": (i % 2) * (1.0 if p == "fp32" else 0.2) + i * 0.01} for p in ("fp32", "rtn-w2g64")
               for i in range(20)]
    s = summarize(rows([("fp32", "0", 0.3, 0.8, 0.7), ("rtn-w2g64", "0", 0.1, 0.6, 0.5)]), samples, attacks=["zlib"],
                  n_resamples=200)
    names = [m.name for m in s.metrics]
    assert {"delta_auc", "delong_p", "delong_p_holm", "delta_tpr@1%fpr"} <= set(names)
    d = next(m for m in s.metrics if m.name == "delta_auc")
    assert d.labels["baseline"] == "fp32" and d.labels["precision"] == "rtn-w2g64" and d.value <= 0


def test_smallest_attainable_p_and_each_models_own_correlation():
    one = {m.name: m for m in summarize(rows([("fp32", "0", 0.3, 0.8, 0.7), ("quanto-int8", "0", 0.2, 0.7, 0.6),
                                              ("rtn-w2g64", "0", 0.1, 0.6, 0.5)])).metrics}
    assert one["spearman_p"].value == pytest.approx(1 / 3) and one["spearman_p_min"].value == pytest.approx(1 / 3)  # 2/3!
    assert "model_spearman_r" not in one  # one model: the pooled correlation is that model's
    two = []
    for model, shift, sign in (("a", 0.0, 1), ("b", 0.3, -1)):  # a: quality and AUC fall together; b: opposite
        for k, prec in enumerate(("fp32", "quanto-int8", "quanto-int4", "rtn-w2g64")):
            lab = {"model": model, "precision": prec, "seed": "0"}
            two += [MetricRow("auc", 0.9 - 0.1 * k * sign - shift, {**lab, "attack": "zlib"}),
                    MetricRow("codebleu", 0.3 - 0.05 * k + shift, lab)]
    s = summarize(two)
    got = {(m.name, m.labels.get("model")): m for m in s.metrics}
    assert got[("spearman_p_min", None)].value == pytest.approx(2 / (24 * 24))
    assert got[("spearman_r", None)].value == pytest.approx(0.0) and "within-model" in got[("spearman_r", None)].labels["p_method"]
    assert got[("model_spearman_r", "a")].value == pytest.approx(1.0) and got[("model_spearman_r", "b")].value == pytest.approx(-1.0)
    assert got[("model_spearman_p", "a")].value == pytest.approx(1 / 12)  # exact: 2 / 4!
    assert got[("model_spearman_p", "b")].labels == {"attack": "zlib", "x": "codebleu", "y": "auc", "model": "b", "n": "4",
                                                     "p_method": "exact permutation"}
