"""Findings: each claim's verdict on constructed rows whose answer is known (quantrisk.findings), under the decision
standard of docs/METRICS.md: symmetric margins, simultaneous intervals, seeds, gates, utility beside risk."""

from __future__ import annotations

import numpy as np
import pytest

from quantrisk.findings import CLAIMS, NO_SUMMARY, RunRows, findings, verdict_lines
from quantrisk.margins import MARGINS
from quantrisk.privacy.summary import summarize
from quantrisk.results import MetricRow
from quantrisk.stats import bootstrap_ci, fast_auc


def _metric(name, value, kind="privacy", ci=(None, None), **labels):
    return {"name": name, "value": float(value), "ci_low": ci[0], "ci_high": ci[1], "labels": labels, "kind": kind}


def _privacy(model, prec, scores: dict[str, np.ndarray], y, nll=2.0, codebleu=None, size=2.0, seed="0", nll_ci=None):
    """Metric rows (AUC with its bootstrap CI, non-member NLL) + per-sample rows of one privacy cell."""
    lab = {"model": model, "precision": prec, "seed": seed}
    metrics = []
    for a, s in scores.items():
        ci = bootstrap_ci(fast_auc, s, y, n_resamples=200)
        metrics.append(_metric("auc", ci.value, ci=(ci.low, ci.high), attack=a, **lab))
    metrics += [_metric("fp16_weight_mb", size, **lab),
                _metric("nonmember_nll", nll, ci=(nll - nll_ci, nll + nll_ci) if nll_ci else (None, None), **lab)]
    if codebleu is not None:
        metrics.append(_metric("codebleu", codebleu, **lab))
    samples = [{"kind": "mi", "sample_id": f"s{i}", "label": int(y[i]), **lab, **{a: float(s[i]) for a, s in scores.items()}}
               for i in range(len(y))]
    return metrics, samples


def _blind(model, seed="0", auc=0.51, ci=(0.46, 0.56), baseline="length_chars"):
    return _metric("blind_auc", auc, kind="privacy-blind", ci=ci, model=model, seed=seed, baseline=baseline)


def _rows(cells, trojan=(), summary=True, extra_metrics=None):
    """RunRows of these cells with their summary; `extra_metrics` (default: a blind baseline that passes for every
    (model, seed))."""
    metrics, samples = [], []
    for m, s in cells:
        metrics += m
        samples += s
    if extra_metrics is None:
        extra_metrics = [_blind(mo, se) for mo, se in {(x["labels"]["model"], x["labels"]["seed"]) for x in metrics}]
    metrics += list(extra_metrics)
    rows = RunRows(metrics, samples, list(trojan), n_resamples=200)
    if summary:
        attacks = list(dict.fromkeys(m["labels"]["attack"] for m in metrics if m["name"] == "auc"))
        got = summarize([MetricRow(m["name"], m["value"], m["labels"]) for m in metrics if m["kind"] == "privacy"],
                        samples, attacks=attacks, n_resamples=200)
        rows.summary = [{"name": m.name, "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high, "labels": m.labels,
                         "kind": "privacy-summary"} for m in got.metrics]
        rows.summary_skipped = dict(got.skipped)
    return rows


def _by(found):
    return {f.claim: f for f in found}


Y = np.r_[np.ones(150), np.zeros(150)].astype(int)
RNG = np.random.default_rng(0)
STRONG = RNG.normal(size=300) + 1.5 * Y
WEAK = STRONG + RNG.normal(scale=2.5, size=300)


# ------------------------------------------------------------------ P1


def test_p1_holds_when_a_4_bit_setting_lowers_the_auc_beyond_the_margin():
    rows = _rows([_privacy("m", "fp32", {"zlib": STRONG, "loss": STRONG * 0.5}, Y),
                  _privacy("m", "quanto-int4", {"zlib": WEAK, "loss": WEAK * 0.5}, Y, nll=2.05),
                  _privacy("m", "quanto-int8", {"zlib": STRONG.copy(), "loss": STRONG * 0.5}, Y)])
    f = CLAIMS["P1"](rows)
    assert f.verdict == "holds" and f.effect < -0.1 and f.ci[1] < -MARGINS["auc"].value and f.p < 0.05
    assert "quanto-int4" in f.why and "n_seeds = 1" in f.why and "ΔNLL +0.05" in f.utility
    assert f.ci_label.startswith("simultaneous 95% CI (Bonferroni over 2)")
    flipped = _rows([_privacy("m", "fp32", {"zlib": WEAK}, Y), _privacy("m", "quanto-int4", {"zlib": STRONG}, Y)])
    assert CLAIMS["P1"](flipped).verdict == "does not hold"


def test_p1_is_decided_by_8_and_4_bit_only_never_by_bf16_or_2_bit():
    bf16 = _rows([_privacy("m", "fp32", {"zlib": STRONG}, Y), _privacy("m", "bf16", {"zlib": WEAK}, Y)])
    f = CLAIMS["P1"](bf16)
    assert f.verdict == "not testable" and "no 8-bit or 4-bit" in f.why  # bf16 is not quantized
    two = _rows([_privacy("m", "fp32", {"zlib": STRONG}, Y), _privacy("m", "rtn-w2g64", {"zlib": WEAK}, Y),
                 _privacy("m", "quanto-int8", {"zlib": STRONG.copy()}, Y)])
    g = CLAIMS["P1"](two)
    assert g.verdict != "holds" and "≤ 3 bits (not deciding): rtn-w2g64" in g.why


def _paired_summary(model_effects, se, p_holm, n=2000):
    """A hand-made summary: `zlib` best; per model one quanto-int4 ΔAUC with DeLong se and stored Holm p."""
    s = [{"name": "best_attack_auc", "value": 0.8, "ci_low": None, "ci_high": None, "labels": {"attack": "zlib"}}]
    for model, d in model_effects.items():
        lab = {"model": model, "precision": "quanto-int4", "attack": "zlib", "baseline": "fp32", "n": str(n), "seed": "0"}
        s += [{"name": "delta_auc", "value": d, "ci_low": d - 1.96 * se, "ci_high": d + 1.96 * se, "labels": lab},
              {"name": "delong_se", "value": se, "ci_low": None, "ci_high": None, "labels": lab},
              {"name": "delong_p", "value": p_holm, "ci_low": None, "ci_high": None, "labels": lab},
              {"name": "delong_p_holm", "value": p_holm, "ci_low": None, "ci_high": None, "labels": lab}]
    metrics = [_metric("auc", 0.8, ci=(0.75, 0.85), attack="zlib", model=mo, precision="fp32", seed="0")
               for mo in model_effects] + [_blind(mo) for mo in model_effects]
    return RunRows(metrics, [], [], s)


def test_p1_a_tiny_significant_drop_is_no_change_not_a_lower_risk():
    # ΔAUC −0.0025 at n = 2,000 with DeLong p 1e-3: significant, but inside the ±0.02 margin
    f = CLAIMS["P1"](_paired_summary({"m": -0.0025}, 0.00075, 1e-3))
    assert f.verdict == "does not hold" and "0 beyond the margin" in f.why


def test_p1_controls_error_across_models():
    # two models, each p = 0.03 on its own (Holm within a model: 0.03): across both, the interval includes 0
    f = CLAIMS["P1"](_paired_summary({"a": -0.05, "b": -0.05}, 0.023, 0.03))
    assert f.verdict == "inconclusive" and f.ci[1] > 0 and f.p == pytest.approx(0.06, rel=0.05)


def test_p1_is_not_testable_when_the_set_fails_the_blind_check_or_the_attack_has_no_signal():
    cells = [_privacy("m", "fp32", {"zlib": STRONG}, Y), _privacy("m", "quanto-int4", {"zlib": WEAK}, Y)]
    blind = [_blind("m", auc=0.59, ci=(0.56, 0.62), baseline="chars_per_token")]
    f = CLAIMS["P1"](_rows(cells, extra_metrics=blind))
    assert f.verdict == "not testable" and "fails the blind check" in f.why and "chars_per_token" in f.why
    assert CLAIMS["P1"](_rows(cells)).verdict == "holds"  # a blind AUC 0.51 [0.46, 0.56] passes
    none = CLAIMS["P1"](_rows(cells, extra_metrics=[]))
    assert none.verdict == "not testable" and "no blind baselines" in none.why
    noise = RNG.normal(size=300)
    flat = _rows([_privacy("m", "fp32", {"zlib": noise}, Y), _privacy("m", "quanto-int4", {"zlib": noise * 0.9}, Y)])
    g = CLAIMS["P1"](flat)
    assert g.verdict == "not testable" and "no MI signal" in g.why


def test_p1_decides_on_seed_level_effects_and_prints_the_seed_count():
    cells = []
    for seed in ("0", "1", "2"):
        rng = np.random.default_rng(int(seed) + 10)
        s = rng.normal(size=300) + 1.5 * Y
        cells += [_privacy("m", "fp32", {"zlib": s}, Y, seed=seed),
                  _privacy("m", "quanto-int4", {"zlib": s + rng.normal(scale=2.5, size=300)}, Y, seed=seed)]
    f = CLAIMS["P1"](_rows(cells))
    assert f.n_seeds == 3 and "n_seeds = 3" in f.why and f.verdict == "holds"
    assert "n_seeds = 3" in verdict_lines([f])[0]


# ------------------------------------------------------------------ P2-P4


def test_p2_zlib_strongest():
    noisy = STRONG + RNG.normal(scale=2.0, size=300)
    ahead = _rows([_privacy("m", p, {"zlib": STRONG, "loss": noisy}, Y) for p in ("fp32", "quanto-int8")])
    f = CLAIMS["P2"](ahead)
    assert f.verdict == "holds" and f.effect > 0.02 and f.p < 0.05
    behind = _rows([_privacy("m", "fp32", {"zlib": noisy, "loss": STRONG}, Y)])
    assert CLAIMS["P2"](behind).verdict == "does not hold"
    tie = _rows([_privacy("m", "fp32", {"zlib": STRONG, "loss": STRONG + 1e-9 * RNG.normal(size=300)}, Y)])
    assert CLAIMS["P2"](tie).verdict == "does not hold"  # tied within ±0.02: zlib is not *the* strongest
    assert CLAIMS["P2"](_rows([_privacy("m", "fp32", {"loss": STRONG}, Y)])).why == "zlib was not run"


def _two_model_cells(nll_trend=True):
    precs = ("fp32", "quanto-int8", "quanto-int4", "hqq-w4g64")
    cells = []
    for model, shift in (("a", 0.0), ("b", 0.3)):
        for k, p in enumerate(precs):
            m, s = _privacy(model, p, {"zlib": STRONG}, Y)
            auc = 0.9 - 0.03 * k - shift
            m = [x for x in m if x["name"] not in ("auc", "nonmember_nll")] + [
                _metric("auc", auc, ci=(auc - 0.03, auc + 0.03), attack="zlib", model=model, precision=p, seed="0"),
                _metric("nonmember_nll", 2.0 + (0.02 * k if nll_trend else 0.02 * ((k * 3) % 4)), model=model,
                        precision=p, seed="0"),
                _metric("codebleu", 0.3, model=model, precision=p, seed="0")]
            cells.append((m, s))
    return cells


def test_p3_correlates_non_member_nll_with_risk_exactly_within_models():
    f = CLAIMS["P3"](_rows(_two_model_cells()))
    # quality = −NLL falls with AUC in both models: within-model ρ = 1, exact p = 2 / (4! · 4!)
    assert f.verdict == "holds" and f.effect == pytest.approx(1.0) and f.p == pytest.approx(2 / 576)
    assert "over 8 points" in f.why and "CodeBLEU" in f.why
    # at |ρ| = 1 the Fisher interval is undefined: no interval collapsed to the point [1, 1] is printed
    assert f.ci is None and "Fisher interval undefined at |ρ| = 1" in f.why


def test_fisher_interval_known_answers():
    import math

    from quantrisk.findings.privacy import fisher_interval

    lo, hi = fisher_interval(0.5, 12)  # atanh 0.5 = 0.5493, se 1.06/3 = 0.3533
    assert lo == pytest.approx(math.tanh(0.5493061 - 1.96 * 1.06 / 3), abs=1e-6) and hi == pytest.approx(
        math.tanh(0.5493061 + 1.96 * 1.06 / 3), abs=1e-6)
    assert fisher_interval(1.0, 8) is None and fisher_interval(-1.0, 8) is None and fisher_interval(0.2, 3) is None


def test_p4_holds_as_its_text_says_not_riskier_and_not_worse_quality():
    rng = np.random.default_rng(5)
    base = rng.normal(size=300) + 1.0 * Y
    loss_small = -2.3 + 0.1 * rng.normal(size=300)
    loss_big = -2.0 + 0.1 * rng.normal(size=300)
    small = _privacy("small", "fp32", {"zlib": base, "loss": loss_small}, Y, size=2.0)
    big_fp = _privacy("big", "fp32", {"zlib": base + 0.3 * Y, "loss": loss_big}, Y, size=8.0)
    big_q = _privacy("big", "quanto-int4", {"zlib": base + 0.05 * rng.normal(size=300), "loss": loss_big - 0.01}, Y,
                     size=8.0)
    f = CLAIMS["P4"](_rows([small, big_fp, big_q]))
    # the same risk (scores barely moved) and quality 0.3 nats/token better: holds without "significantly lower risk"
    assert f.verdict == "holds" and f.effect > 0.2 and "big@quanto-int4 vs small@fp32" in f.why
    risky = _privacy("big", "quanto-int4", {"zlib": base + 1.5 * Y, "loss": loss_big}, Y, size=8.0)
    assert CLAIMS["P4"](_rows([small, big_fp, risky])).verdict == "does not hold"
    assert CLAIMS["P4"](_rows([small])).verdict == "not testable"


def test_p4_without_loss_scores_uses_the_stored_nll_with_its_ci_and_says_so():
    rng = np.random.default_rng(6)
    base = rng.normal(size=300) + 1.0 * Y
    small = _privacy("small", "fp32", {"zlib": base}, Y, nll=2.3, nll_ci=0.05, size=2.0, codebleu=0.2)
    big_q = _privacy("big", "quanto-int4", {"zlib": base + 0.05 * rng.normal(size=300)}, Y, nll=1.8, nll_ci=0.05,
                     size=8.0, codebleu=0.3)
    big_fp = _privacy("big", "fp32", {"zlib": base}, Y, nll=1.79, size=8.0)
    f = CLAIMS["P4"](_rows([small, big_fp, big_q]))
    assert f.verdict == "holds" and f.effect == pytest.approx(0.5)
    assert "stored non-member NLL rows (unpaired" in f.why and "ΔCodeBLEU +0.1" in f.why
    no_ci = _privacy("small", "fp32", {"zlib": base}, Y, nll=2.3, size=2.0)
    assert CLAIMS["P4"](_rows([no_ci, big_fp, big_q])).verdict == "not testable"


# ------------------------------------------------------------------ trojan


def _trojan(kind, dap2, payload, ps_sum, n=30, seed="0", steps=None, ex=None, length=20.0):
    out = []
    for inp in ("triggered", "clean"):
        lab = {"model": "m", "dap1": "fp32", "kind": kind, "seed": seed, "dap2": dap2, "input": inp}
        for i in range(n):
            trig = inp == "triggered"
            out.append({**lab, "prompt_id": f"r{i}", "payload": bool(payload[i]) if trig else False,
                        "ps": float(ps_sum[i]) / length if trig else 0.0, "ps_sum": float(ps_sum[i]) if trig else 0.0,
                        "steps": length if steps is None else steps, "em": 0.0, "ex": 0.5 if ex is None else ex})
    return out


def test_trojan_claims_hold_on_a_clear_effect():
    n = 48
    ones, zeros = np.ones(n), np.zeros(n)
    ps = RNG.uniform(1, 2, n)
    rows = RunRows([], [], _trojan("poisoned", "fp32", ones, ps, n) + _trojan("poisoned", "bnb-nf4", zeros, ps * 0.2, n)
                   + _trojan("poisoned", "quanto-int8", ones, ps.copy(), n)
                   + _trojan("clean", "fp32", zeros, ps * 0, n) + _trojan("clean", "bnb-nf4", zeros, ps * 0, n))
    got = _by(findings(rows))
    t1 = got["T1"]
    assert t1.verdict == "holds" and t1.effect == -1.0 and t1.p == pytest.approx(2 * 0.5**48)
    assert "clean EX 0.50 → 0.50" in t1.utility
    assert got["T2"].verdict == "holds" and "bnb-nf4" in got["T2"].why
    t3 = got["T3"]  # 0 of 48 prompts (192 outputs): the bound is by prompt
    assert t3.verdict == "holds" and t3.ci[1] == pytest.approx(1 - 0.025 ** (1 / 48)) and "192 outputs" in t3.why


def test_t1_no_discordant_pair_at_n20_is_not_equivalence():
    n = 20
    ones, ps = np.ones(n), RNG.uniform(1, 2, n)
    rows = RunRows([], [], _trojan("poisoned", "fp32", ones, ps, n) + _trojan("poisoned", "quanto-int4", ones, ps, n))
    f = CLAIMS["T1"](rows)
    # the paired score interval at 0 discordant of 20 is ±0.16, wider than the ±0.1 margin
    assert f.verdict == "inconclusive" and f.ci[1] > 0.16


def test_t1_t2_not_testable_when_the_backdoor_never_implanted():
    n = 30
    zeros, ps = np.zeros(n), RNG.uniform(0, 0.01, n)
    rows = RunRows([], [], _trojan("poisoned", "fp32", zeros, ps, n) + _trojan("poisoned", "quanto-int4", zeros, ps * 3, n))
    got = _by(findings(rows))
    assert got["T1"].verdict == "not testable" and "did not implant" in got["T1"].why
    assert got["T2"].verdict == "not testable" and "did not implant" in got["T2"].why


def _t2_rows(delta_sum, noise, n=20, seed=0, length_q=20.0, ex_q=None):
    rng = np.random.default_rng(seed)
    base = rng.uniform(1, 2, n)
    q = base + delta_sum + rng.normal(scale=noise, size=n)
    return RunRows([], [], _trojan("poisoned", "fp32", np.ones(n), base, n)
                   + _trojan("poisoned", "quanto-int4", np.ones(n), q, n, length=length_q, ex=ex_q))


def test_t2_a_real_shift_at_the_margin_with_n20_is_not_does_not_hold():
    # a 10% shift (mean signal 1.5, shift 0.15 = 0.3 SD of the paired noise 0.5) that no test at n = 20 resolves
    verdicts = [CLAIMS["T2"](_t2_rows(0.15, 0.5, seed=s)).verdict for s in range(10)]
    assert "does not hold" not in verdicts


def test_t2_needs_an_effect_beyond_the_floor():
    f = CLAIMS["T2"](_t2_rows(0.006, 0.001, n=48))  # 0.4% shift, t p ~ 1e-20
    assert f.verdict == "does not hold" and f.p < 1e-10


def test_t2_never_credits_a_shift_of_a_broken_model_or_a_longer_output():
    broken = CLAIMS["T2"](_t2_rows(1.0, 0.1, n=48, ex_q=0.0))  # shifted, but clean EX 0.5 -> 0
    assert broken.verdict == "not testable" and "degraded" in broken.why
    # the sum doubles only because outputs are twice as long: the per-step mean does not move
    rng = np.random.default_rng(1)
    base = rng.uniform(1, 2, 48)
    longer = RunRows([], [], _trojan("poisoned", "fp32", np.ones(48), base, 48)
                     + _trojan("poisoned", "quanto-int4", np.ones(48), base * 1.4, 48, length=28.0))
    assert CLAIMS["T2"](longer).verdict != "holds"


def test_t2_a_constant_shift_has_a_finite_p():
    f = CLAIMS["T2"](_t2_rows(0.5, 0.0, n=48))  # every prompt's sum up by exactly 0.5 (~33%), the per-step mean too
    assert f.verdict == "holds" and f.p == 0.0


def test_t2_says_not_testable_without_the_summed_signal():
    rows = _t2_rows(1.0, 0.1, n=48)
    for r in rows.trojan:
        r.pop("ps_sum")
    f = CLAIMS["T2"](rows)
    assert f.verdict == "not testable" and "ps_sum" in f.why


def test_t3_counts_prompts_not_outputs_and_needs_enough_of_them():
    n = 8
    zeros = np.zeros(n)
    few = RunRows([], [], _trojan("clean", "fp32", zeros, zeros, n) + _trojan("clean", "bnb-nf4", zeros, zeros, n))
    f = CLAIMS["T3"](few)
    assert f.verdict == "inconclusive" and f.ci[1] == pytest.approx(1 - 0.025 ** (1 / 8))
    one = _trojan("clean", "fp32", np.r_[1, np.zeros(47)], np.zeros(48), 48) + _trojan("clean", "bnb-nf4", np.zeros(48), np.zeros(48), 48)
    assert CLAIMS["T3"](RunRows([], [], one)).verdict == "does not hold"


# ------------------------------------------------------------------ common


def test_every_claim_answers_on_an_empty_run_and_prints_a_line():
    found = findings(RunRows([], [], []))
    assert [f.claim for f in found] == ["P1", "P2", "P3", "P4", "T1", "T2", "T3"]
    assert all(f.verdict == "not testable" and f.why for f in found)
    assert verdict_lines(found)[0].startswith("P1 not testable — ")


def test_a_store_without_a_summary_is_not_testable_with_the_reason():
    cells = [_privacy("m", "fp32", {"zlib": STRONG}, Y), _privacy("m", "quanto-int4", {"zlib": WEAK}, Y)]
    old = _rows(cells, summary=False)
    for claim in ("P1", "P3", "P4"):
        f = CLAIMS[claim](old)
        assert (f.verdict, f.why, f.effect, f.p) == ("not testable", NO_SUMMARY, None, None)
    assert CLAIMS["P1"](RunRows([], [], [])).why == "no privacy study in this run"


def test_the_margins_are_written_in_metrics_md_from_the_one_definition():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "METRICS.md").read_text(encoding="utf-8")
    section = text.split("## Decision standard", 1)[1].split("\n## ", 1)[0]
    for name, m in MARGINS.items():
        assert f"`{name}`" in section and f"{m.value:.3g}" in section, name


def test_from_store_reads_the_latest_summary_cell(tmp_path):
    from quantrisk.cells import Cell
    from quantrisk.results import StudyResult
    from quantrisk.store import Store

    cells = [_privacy("m", "fp32", {"zlib": STRONG}, Y), _privacy("m", "quanto-int4", {"zlib": WEAK}, Y)]
    with Store(tmp_path) as st:
        ids = []
        for i, (m, s) in enumerate(cells):
            c = Cell("privacy", {"i": i})
            st.add_cells([c])
            st.write_result(c.id, StudyResult("privacy", [MetricRow(x["name"], x["value"], x["labels"], x["ci_low"],
                                                                    x["ci_high"]) for x in m], s))
            ids.append(c.id)
        assert CLAIMS["P1"](RunRows.from_store(st)).why == NO_SUMMARY
        blind = Cell("privacy-blind", {"model": "m", "seed": 0})
        st.add_cells([blind])
        st.write_result(blind.id, StudyResult("privacy-blind", [MetricRow("blind_auc", 0.5, {"model": "m", "seed": "0",
                                                                                           "baseline": "length_chars"},
                                                                          0.45, 0.55)]))
        summary = Cell("privacy-summary", {"attacks": ["zlib"]}, tuple(ids))
        st.add_cells([summary])
        st.write_result(summary.id, summarize([m for i in ids for m in st.metric_rows(i)],
                                              [r for i in ids for r in st.sample_rows(i)], attacks=["zlib"], n_resamples=200))
        rows = RunRows.from_store(st)
    assert {m["name"] for m in rows.summary} >= {"best_attack_auc", "delta_auc", "delong_se", "delong_p_holm"}
    assert CLAIMS["P1"](rows).verdict == "holds"


def test_simulated_rules_rarely_reach_the_wrong_conclusion():
    from benchmarks.verdicts import simulate

    # the demo's shape (3 seeds, 48 prompts): a null ΔASR never "holds"; a shift at the margin never "does not hold"
    assert simulate("T1", 0.0, 20, 3)["holds"] == 0
    assert simulate("T2", MARGINS["ps_relative"].value, 20, 3)["does not hold"] == 0
