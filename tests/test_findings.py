"""Findings: each claim's verdict on constructed rows whose answer is known (quantrisk.findings)."""

from __future__ import annotations

import numpy as np
import pytest

from quantrisk.findings import CLAIMS, NO_SUMMARY, RunRows, findings, verdict_lines
from quantrisk.privacy.summary import summarize
from quantrisk.results import MetricRow
from quantrisk.stats import roc_auc


def _metric(name, value, kind="privacy", **labels):
    return {"name": name, "value": float(value), "ci_low": None, "ci_high": None, "labels": labels, "kind": kind}


def _privacy(model, prec, scores: dict[str, np.ndarray], y, codebleu=None, per_sample_cb=None, size=2.0):
    """Metric rows (AUC from the scores) + per-sample rows of one privacy cell."""
    lab = {"model": model, "precision": prec, "seed": "0"}
    metrics = [_metric("auc", roc_auc(s, y), attack=a, **lab) for a, s in scores.items()]
    metrics.append(_metric("fp16_weight_mb", size, **lab))
    samples = [{"kind": "mi", "sample_id": f"s{i}", "label": int(y[i]), **lab, **{a: float(s[i]) for a, s in scores.items()}}
               for i in range(len(y))]
    if codebleu is not None:
        metrics.append(_metric("codebleu", codebleu, **lab))
    if per_sample_cb is not None:
        samples += [{"kind": "completion", "sample_id": f"c{i}", "codebleu": float(v), **lab} for i, v in enumerate(per_sample_cb)]
    return metrics, samples


def _rows(cells, trojan=(), summary=True):
    """RunRows of these privacy cells with the summary the privacy-summary cell stores for them (`summary=False`: a
    store made before that cell existed)."""
    metrics, samples = [], []
    for m, s in cells:
        metrics += m
        samples += s
    rows = RunRows(metrics, samples, list(trojan), n_resamples=300)
    if summary:
        attacks = list(dict.fromkeys(m["labels"]["attack"] for m in metrics if m["name"] == "auc"))
        got = summarize([MetricRow(m["name"], m["value"], m["labels"]) for m in metrics], samples, attacks=attacks,
                        n_resamples=300)
        rows.summary = [{"name": m.name, "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high, "labels": m.labels,
                         "kind": "privacy-summary"} for m in got.metrics]
        rows.summary_skipped = dict(got.skipped)
    return rows


def _by(found):
    return {f.claim: f for f in found}


Y = np.r_[np.ones(150), np.zeros(150)].astype(int)
RNG = np.random.default_rng(0)
STRONG = RNG.normal(size=300) + 1.5 * Y


def test_p1_holds_when_quantization_significantly_lowers_the_auc_and_not_when_it_raises_it():
    weak = STRONG + RNG.normal(scale=2.5, size=300)
    rows = _rows([_privacy("m", "fp32", {"zlib": STRONG, "loss": STRONG * 0.5}, Y),
                  _privacy("m", "rtn-w2g64", {"zlib": weak, "loss": weak * 0.5}, Y),
                  _privacy("m", "quanto-int8", {"zlib": STRONG.copy(), "loss": STRONG * 0.5}, Y)])
    f = CLAIMS["P1"](rows)
    assert f.verdict == "holds" and f.effect < -0.1 and f.ci[1] < 0 and f.p < 0.05
    assert "rtn-w2g64" in f.why and "1 of 2" in f.why  # int8 unchanged
    flipped = _rows([_privacy("m", "fp32", {"zlib": weak}, Y), _privacy("m", "quanto-int4", {"zlib": STRONG}, Y)])
    assert CLAIMS["P1"](flipped).verdict == "does not hold"
    only_fp = _rows([_privacy("m", "fp32", {"zlib": STRONG}, Y)])
    assert CLAIMS["P1"](only_fp).verdict == "inconclusive"


def test_p2_zlib_strongest():
    noisy = STRONG + RNG.normal(scale=2.0, size=300)
    ahead = _rows([_privacy("m", p, {"zlib": STRONG, "loss": noisy}, Y) for p in ("fp32", "quanto-int8")])
    f = CLAIMS["P2"](ahead)
    assert f.verdict == "holds" and f.effect > 0 and f.p < 0.05
    behind = _rows([_privacy("m", "fp32", {"zlib": noisy, "loss": STRONG}, Y)])
    assert CLAIMS["P2"](behind).verdict == "does not hold"
    tie = _rows([_privacy("m", "fp32", {"zlib": STRONG, "loss": STRONG + 1e-9 * RNG.normal(size=300)}, Y)])
    assert CLAIMS["P2"](tie).verdict == "inconclusive"
    assert CLAIMS["P2"](_rows([_privacy("m", "fp32", {"loss": STRONG}, Y)])).why == "zlib was not run"


def test_p3_uses_exact_within_model_p_values():
    cells = _two_model_cells()  # model b: higher quality, lower AUC level; within each: both fall
    f = CLAIMS["P3"](_rows(cells))
    # perfect within-model agreement; exact p = 2 / (4! · 4!) = 1/288
    assert f.verdict == "holds" and f.effect == pytest.approx(1.0) and f.p == pytest.approx(2 / 576)
    three = _rows(cells[:3])
    g = CLAIMS["P3"](three)
    assert g.verdict == "inconclusive" and g.p == pytest.approx(1 / 3) and "smallest attainable p" in g.why


def test_p4_larger_quantized_beats_smaller_full_precision():
    weak = STRONG + RNG.normal(scale=2.5, size=300)
    big_q = _privacy("big", "quanto-int4", {"zlib": weak}, Y, per_sample_cb=RNG.uniform(0.4, 0.6, 50), size=8.0)
    big_fp = _privacy("big", "fp32", {"zlib": STRONG}, Y, per_sample_cb=RNG.uniform(0.45, 0.65, 50), size=8.0)
    small = _privacy("small", "fp32", {"zlib": STRONG}, Y, per_sample_cb=RNG.uniform(0.1, 0.3, 50), size=2.0)
    f = CLAIMS["P4"](_rows([big_q, big_fp, small]))
    assert f.verdict == "holds" and f.effect > 0.2 and f.ci[0] > 0 and "big@quanto-int4 vs small@fp32" in f.why
    worse = _privacy("big", "quanto-int4", {"zlib": STRONG}, Y, per_sample_cb=RNG.uniform(0.0, 0.1, 50), size=8.0)
    assert CLAIMS["P4"](_rows([worse, big_fp, small])).verdict == "does not hold"
    assert CLAIMS["P4"](_rows([small])).verdict == "inconclusive"
    near = _privacy("small2", "quanto-int4", {"zlib": weak}, Y, per_sample_cb=RNG.uniform(0.4, 0.6, 50), size=2.5)
    f = CLAIMS["P4"](_rows([near, small]))
    assert f.verdict == "inconclusive" and "less than 1.5x" in f.why


def _trojan(kind, dap2, payload, ps_sum, n=30):
    lab = {"model": "m", "dap1": "fp32", "kind": kind, "seed": "0", "dap2": dap2, "input": "triggered"}
    return [{**lab, "prompt_id": f"r{i}", "payload": bool(payload[i]), "ps": ps_sum[i] / 5, "ps_sum": float(ps_sum[i])}
            for i in range(n)]


def test_trojan_claims():
    n = 30
    ones, zeros = np.ones(n), np.zeros(n)
    ps = RNG.uniform(1, 2, n)
    rows = RunRows([], [], _trojan("poisoned", "fp32", ones, ps) + _trojan("poisoned", "bnb-nf4", zeros, ps * 0.2)
                   + _trojan("poisoned", "quanto-int8", ones, ps.copy())
                   + _trojan("clean", "fp32", zeros, ps * 0) + _trojan("clean", "bnb-nf4", zeros, ps * 0))
    got = _by(findings(rows))
    t1 = got["T1"]
    assert t1.verdict == "holds" and t1.effect == -1.0 and t1.p == pytest.approx(2 * 0.5**30)  # McNemar: 30 discordant pairs
    assert got["T2"].verdict == "holds" and "bnb-nf4" in got["T2"].why
    t3 = got["T3"]
    assert t3.verdict == "holds" and t3.effect == 0 and t3.ci[1] == pytest.approx(1 - 0.025 ** (1 / 60))  # Clopper–Pearson, 0 of 60
    same = RunRows([], [], _trojan("poisoned", "fp32", ones, ps) + _trojan("poisoned", "quanto-int4", ones, ps.copy())
                   + _trojan("clean", "fp32", np.r_[1, zeros[1:]], ps))
    got = _by(findings(same))
    assert got["T1"].verdict == "does not hold"  # 30 prompts, no change, CI [0, 0]
    assert got["T2"].verdict == "does not hold" and got["T3"].verdict == "does not hold"
    assert _by(findings(RunRows([], [], [])))["T1"].verdict == "inconclusive"


def test_every_claim_answers_on_an_empty_run_and_prints_a_line():
    found = findings(RunRows([], [], []))
    assert [f.claim for f in found] == ["P1", "P2", "P3", "P4", "T1", "T2", "T3"]
    assert all(f.verdict == "inconclusive" and f.why for f in found)
    lines = verdict_lines(found)
    assert lines[0].startswith("P1 inconclusive — ")


def _two_model_cells():
    precs = ("fp32", "quanto-int8", "quanto-int4", "rtn-w2g64")
    cells = []
    for model, shift in (("a", 0.0), ("b", 0.3)):
        for k, p in enumerate(precs):
            m, s = _privacy(model, p, {"zlib": STRONG}, Y)
            m = [x for x in m if x["name"] != "auc"] + [_metric("auc", 0.9 - 0.1 * k - shift, attack="zlib", model=model, precision=p, seed="0"),
                                                        _metric("codebleu", 0.3 - 0.05 * k + shift, model=model, precision=p, seed="0")]
            cells.append((m, s))
    return cells


def test_p3_names_each_models_own_exact_correlation_from_the_summary():
    f = CLAIMS["P3"](_rows(_two_model_cells()))
    # each model: perfect ranking of 4 points, exact p = 2 / 4! = 1/12
    assert "pooled within-model ρ = 1 over 8 points" in f.why
    assert "a: ρ = 1, exact permutation p = 0.0833 (n = 4)" in f.why and "b: ρ = 1" in f.why


def test_claims_read_the_summary_and_recompute_nothing():
    weak = STRONG + RNG.normal(scale=2.5, size=300)
    cells = [_privacy("m", "fp32", {"zlib": STRONG, "loss": STRONG * 0.5}, Y),
             _privacy("m", "rtn-w2g64", {"zlib": weak, "loss": weak * 0.5}, Y)]
    rows = _rows(cells)
    assert CLAIMS["P1"](rows).verdict == "holds"
    # a summary that disagrees with the cells on purpose: the claims follow it
    rows.summary = [dict(m, labels={**m["labels"], "attack": "nonesuch"}) if m["name"] == "best_attack_auc" else m
                    for m in rows.summary]
    f = CLAIMS["P1"](rows)
    assert f.verdict == "inconclusive" and f.effect is None  # no stored paired rows of the stored best attack
    labels = {"attack": "zlib", "x": "codebleu", "y": "auc", "n": "5", "p_method": "exact permutation"}
    rows.summary += [{"name": "spearman_r", "value": -0.9, "ci_low": None, "ci_high": None, "labels": labels},
                     {"name": "spearman_p", "value": 0.01, "ci_low": None, "ci_high": None, "labels": labels}]
    g = CLAIMS["P3"](rows)
    assert g.verdict == "does not hold" and g.effect == -0.9 and g.p == 0.01 and "ρ = -0.9 over 5 points" in g.why


def test_a_store_without_a_summary_is_inconclusive_with_the_reason():
    weak = STRONG + RNG.normal(scale=2.5, size=300)
    cells = [_privacy("m", "fp32", {"zlib": STRONG}, Y, codebleu=0.3), _privacy("m", "rtn-w2g64", {"zlib": weak}, Y, codebleu=0.2),
             _privacy("m", "quanto-int4", {"zlib": weak}, Y, codebleu=0.1)]
    assert CLAIMS["P1"](_rows(cells)).verdict == "holds"  # with its summary
    old = _rows(cells, summary=False)
    assert old.paired() == []
    for claim in ("P1", "P3", "P4"):
        f = CLAIMS[claim](old)
        assert (f.verdict, f.why, f.effect, f.p) == ("inconclusive", NO_SUMMARY, None, None)
    assert "rerun" in NO_SUMMARY and "--new-spec" in NO_SUMMARY
    assert CLAIMS["P1"](RunRows([], [], [])).why == "no privacy study in this run"


def test_from_store_reads_the_latest_summary_cell_and_says_when_there_is_none(tmp_path):
    from quantrisk.cells import Cell
    from quantrisk.results import StudyResult
    from quantrisk.store import Store

    weak = STRONG + RNG.normal(scale=2.5, size=300)
    cells = [_privacy("m", "fp32", {"zlib": STRONG}, Y), _privacy("m", "rtn-w2g64", {"zlib": weak}, Y)]
    with Store(tmp_path) as st:
        ids = []
        for i, (m, s) in enumerate(cells):
            c = Cell("privacy", {"i": i})
            st.add_cells([c])
            st.write_result(c.id, StudyResult("privacy", [MetricRow(x["name"], x["value"], x["labels"]) for x in m], s))
            ids.append(c.id)
        old = RunRows.from_store(st)
        assert old.summary is None and CLAIMS["P1"](old).why == NO_SUMMARY
        summary = Cell("privacy-summary", {"attacks": ["zlib"]}, tuple(ids))
        st.add_cells([summary])
        st.write_result(summary.id, summarize([m for i in ids for m in st.metric_rows(i)],
                                              [r for i in ids for r in st.sample_rows(i)], attacks=["zlib"], n_resamples=300))
        rows = RunRows.from_store(st)
    assert {m["name"] for m in rows.summary} >= {"best_attack_auc", "delta_auc", "delong_p_holm"}
    assert rows.summary_skipped == {"quality-risk correlation: needs 3 or more precisions, got 2": 1}
    assert CLAIMS["P1"](rows).verdict == "holds"
    assert "needs 3 or more precisions" in CLAIMS["P3"](rows).why
