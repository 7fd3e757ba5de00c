"""The privacy seed study's claims (P1-P4), registered in `base.CLAIMS`, decided by the standard of `base`.

Every P-claim first passes the privacy gate (`privacy_gate`): per (model, seed), the member/non-member set passes
the blind check (no model-free score separates it: `blind_auc` rows) and the strongest attack shows a signal at the
baseline precision (its AUC CI excludes 0.5); a (model, seed) that fails is left out with the reason, and a claim
left with nothing is **not testable**. Quality is held-out non-member NLL (`nonmember_nll`, nats/token; primary)
with CodeBLEU beside it; each risk change carries the utility change of the same cell, and a precision whose NLL rises
by more than `DEGRADED_NLL` is **degraded** (reported, not credited). The best attack and the paired comparisons are
read from the privacy-summary cell's rows. Rules and margins: docs/METRICS.md ("Decision standard").
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from quantrisk import formats
from quantrisk.comparisons import baseline_precision
from quantrisk.findings.base import (
    HOLDS,
    INCONCLUSIVE,
    NOT,
    Comparison,
    Finding,
    RunRows,
    bits,
    ci_label,
    decide,
    describe,
    family_level,
    fmt,
    is_quantized,
    margin,
    register_claim,
    seed_interval,
    seed_p,
    seeds_note,
    untestable,
    z_of,
)
from quantrisk.margins import ALPHA, BLIND_MARGIN, DEGRADED_NLL, MARGINS, MIN_PAIRED
from quantrisk.stats import delong_test, holm

MIN_SIZE_RATIO = 1.5  # P4: "larger" = at least this many times the parameters (fp16 bytes) of the smaller model
DECIDING_BITS = (8, 4)  # P1: the seed study's quantized settings; <= 3 bits are reported on a separate line


def best_attack(rows: RunRows) -> str | None:
    """The strongest attack, as the privacy-summary cell stored it (`best_attack_auc`; None without one)."""
    stored = rows.summary_named("best_attack_auc")
    return str(stored[0]["labels"]["attack"]) if stored else None


def _lab(m: dict[str, Any], key: str) -> str:
    return str(m["labels"].get(key, ""))


def privacy_gate(rows: RunRows, attack: str | None) -> tuple[set[tuple[str, str]], list[str]]:
    """((model, seed) pairs that pass, reasons for those that fail or were not checked). See the module doc."""
    aucs = [m for m in rows.named("auc", "privacy") if _lab(m, "attack") == attack]
    by: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for m in aucs:
        by[(_lab(m, "model"), _lab(m, "seed"))][_lab(m, "precision")] = m
    blind: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for m in rows.named("blind_auc") + rows.summary_named("blind_auc"):
        blind[(_lab(m, "model"), _lab(m, "seed"))].append(m)
    ok, notes = set(), []
    for key, precs in sorted(by.items()):
        base = baseline_precision(precs)
        who = f"{key[0]} (seed {key[1] or '?'})"
        if base is None:
            notes.append(f"{who}: no full-precision cell")
            continue
        a = precs[base]
        lo, hi = a.get("ci_low"), a.get("ci_high")
        if lo is None or hi is None:
            notes.append(f"{who}: the {attack} AUC at {base} has no CI, so its MI signal cannot be checked")
            continue
        if lo <= 0.5 <= hi:
            notes.append(f"{who}: no MI signal ({attack} AUC {fmt(a['value'])} [{fmt(lo)}, {fmt(hi)}] at {base} "
                         "contains 0.5)")
            continue
        failed = [b for b in blind.get(key, []) if _blind_fails(b, a["value"])]
        if failed:
            notes.append(f"{who}: the member/non-member set fails the blind check: " + ", ".join(
                f"{_lab(b, 'baseline') or 'blind'} AUC {fmt(b['value'])} [{fmt(b.get('ci_low'))}, "
                f"{fmt(b.get('ci_high'))}]" for b in failed)
                + f" (margin ±{BLIND_MARGIN} around 0.5, or ≥ the attack's {fmt(a['value'])})")
            continue
        if not blind.get(key):
            notes.append(f"{who}: no blind baselines were computed for this set (an older run: rerun its spec), so "
                         "the set cannot be shown fit")
            continue
        ok.add(key)
    return ok, notes


def _blind_fails(b: dict[str, Any], attack_auc: float) -> bool:
    """A blind AUC fails when its CI lies wholly outside 0.5 ± BLIND_MARGIN (either side) or it reaches the attack's.
    A row without a CI fails only on its value."""
    lo, hi = b.get("ci_low"), b.get("ci_high")
    outside = lo is not None and hi is not None and (lo > 0.5 + BLIND_MARGIN or hi < 0.5 - BLIND_MARGIN)
    return outside or max(b["value"], 1 - b["value"]) >= attack_auc


def _per_cell(rows: RunRows, name: str) -> dict[tuple[str, str, str], float]:
    """(model, precision, seed) -> value of the privacy metric `name`."""
    return {(_lab(m, "model"), _lab(m, "precision"), _lab(m, "seed")): float(m["value"]) for m in rows.named(name, "privacy")}


def privacy_utility(rows: RunRows, model: str, precision: str, base: str, seeds: Sequence[str]) -> tuple[str, bool]:
    """(text, degraded) of the utility change at (model, precision) against `base` over `seeds`: Δ non-member NLL
    (nats/token, mean over seeds; degraded beyond `DEGRADED_NLL`) and ΔCodeBLEU."""
    nll, cb = _per_cell(rows, "nonmember_nll"), _per_cell(rows, "codebleu")
    dn = [nll[(model, precision, s)] - nll[(model, base, s)] for s in seeds
          if (model, precision, s) in nll and (model, base, s) in nll]
    dc = [cb[(model, precision, s)] - cb[(model, base, s)] for s in seeds
          if (model, precision, s) in cb and (model, base, s) in cb]
    parts = []
    if dn:
        parts.append(f"ΔNLL {formats.delta(float(np.mean(dn)))} nats/token")
    if dc:
        parts.append(f"ΔCodeBLEU {formats.delta(float(np.mean(dc)))}")
    degraded = bool(dn) and float(np.mean(dn)) > DEGRADED_NLL
    if degraded:
        parts.append(f"degraded (NLL up by more than ln 1.25 = {DEGRADED_NLL:.3f})")
    return (", ".join(parts) if parts else "no quality rows"), degraded


def _paired_by(rows: RunRows, attack: str) -> dict[tuple[str, str, str], dict[str, dict[str, Any]]]:
    """(model, precision, seed) -> name -> the summary's paired row of `attack`."""
    out: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for m in rows.paired():
        if _lab(m, "attack") == attack:
            out[(_lab(m, "model"), _lab(m, "precision"), _lab(m, "seed"))][m["name"]] = m
    return out


def _auc_comparisons(rows: RunRows, attack: str, ok: set[tuple[str, str]]
                     ) -> dict[tuple[str, str], list[tuple[str, float, float, int, str]]]:
    """(model, precision) -> per seed (seed, ΔAUC, se, n, baseline) from the summary's paired rows, for the
    (model, seed) pairs that passed the gate. The se is DeLong's (`delong_se`); an older summary without it: the
    paired bootstrap CI's width / 3.92. A zero se (no pair of samples changed order) is floored at the
    Clopper-Pearson bound of 0 changed samples in n/2 divided by z, so that identical rankings never give a point."""
    out: dict[tuple[str, str], list[tuple[str, float, float, int, str]]] = defaultdict(list)
    for (model, prec, seed), names in sorted(_paired_by(rows, attack).items()):
        d = names.get("delta_auc")
        if d is None or (model, seed) not in ok:
            continue
        n = int(float(d["labels"].get("n", 0) or 0))
        if "delong_se" in names:
            se = float(names["delong_se"]["value"])
        elif d.get("ci_low") is not None and d.get("ci_high") is not None:
            se = (d["ci_high"] - d["ci_low"]) / 3.92
        else:
            continue
        se = se if se > 0 else _se_floor(n)
        out[(model, prec)].append((seed, float(d["value"]), se, n, str(d["labels"].get("baseline", ""))))
    return out


def _se_floor(n: int) -> float:
    """The se used when DeLong's is 0 (no pair of samples changed order between the two scorings): the 95%
    Clopper-Pearson upper bound of 0 changed samples in n/2 (a changed share q moves the AUC by at most q) over 1.96."""
    from quantrisk.proportions import clopper_pearson_ci

    return clopper_pearson_ci(0, max(n // 2, 1))[1] / 1.96


def _combine(per_seed: Sequence[tuple[str, float, float, int, str]], level: float) -> tuple[float, float, float, float]:
    """(est, low, high, p) over seeds: mean effect, within-seed se of the mean, joined with the seeds' t interval."""
    effects = [e for _, e, _, _, _ in per_seed]
    k = len(effects)
    est = float(np.mean(effects))
    se_w = math.sqrt(sum(se**2 for _, _, se, _, _ in per_seed)) / k
    z = z_of(level)
    est, lo, hi = seed_interval(est, (est - z * se_w, est + z * se_w), effects if k >= 2 else [], level)
    return est, lo, hi, seed_p(est, se_w, effects if k >= 2 else [])


def _gate_note(notes: list[str]) -> str:
    return ("gate: " + "; ".join(notes)) if notes else ""


# ------------------------------------------------------------------ P1


@register_claim("P1")
def p1_quantization_lowers_mi_risk(rows: RunRows) -> Finding:
    statement = "Quantization lowers membership-inference risk."
    m = margin("auc")
    test = (f"the seed's settings: 8-bit and 4-bit quantized vs the full-precision baseline, same samples; ΔAUC of the "
            f"strongest attack per (model, precision), seed-level (mean over seeds; DeLong se within seeds joined with "
            f"the seeds' t interval), simultaneous Bonferroni intervals and Holm p over every model × precision; "
            f"margin ±{m} AUC applied both ways; ≤ 3 bits reported, not deciding; bf16/fp16 are not quantized")
    if rows.missing_summary():
        return untestable("P1", statement, test, str(rows.missing_summary()))
    attack = best_attack(rows)
    if attack is None:
        return untestable("P1", statement, test, "the privacy summary names no strongest attack")
    ok, notes = privacy_gate(rows, attack)
    if not ok:
        return untestable("P1", statement, test, "no (model, seed) passes the privacy gate: " + "; ".join(notes))
    by = _auc_comparisons(rows, attack, ok)
    deciding = {k: v for k, v in by.items() if is_quantized(k[1]) and bits(k[1]) in DECIDING_BITS}
    low_bit = {k: v for k, v in by.items() if is_quantized(k[1]) and (bits(k[1]) or 99) <= 3}
    if not deciding:
        have = ", ".join(sorted({p for _, p in by})) or "none"
        return untestable("P1", statement, test, f"{attack}: no 8-bit or 4-bit quantized precision with a "
                          f"full-precision baseline on the same samples (compared: {have})")
    comps, degraded = [], []
    util = {k: privacy_utility(rows, k[0], k[1], v[0][4], [s for s, *_ in v]) for k, v in deciding.items()}
    n_decide = sum(not util[k][1] for k in deciding)
    level = family_level(n_decide)
    for (model, prec), per_seed in sorted(deciding.items()):
        est, lo, hi, p = _combine(per_seed, level)
        c = Comparison(f"{prec} ({model}, {bits(prec)} bit)", est, lo, hi, p, min(n for *_, n, _ in per_seed),
                       len(per_seed), util[(model, prec)][0], util[(model, prec)][1])
        (degraded if c.degraded else comps).append(c)
    extra = [_gate_note(notes)] if notes else []
    if low_bit:
        lv = family_level(len(low_bit))
        extra.append("≤ 3 bits (not deciding): " + "; ".join(
            describe(Comparison(f"{p} ({mo})", *_combine(v, lv)[:3], 1.0, min(x[3] for x in v), len(v),
                                privacy_utility(rows, mo, p, v[0][4], [s for s, *_ in v])[0]))
            for (mo, p), v in sorted(low_bit.items())))
    if not comps:
        return untestable("P1", statement, test, "every 8/4-bit setting is degraded: " +
                          "; ".join(describe(c) for c in degraded), max(c.n_seeds for c in degraded))
    return decide("P1", statement, test, comps, m, -1, holm([c.p for c in comps]), degraded=degraded,
                  extra="; ".join(e for e in extra if e))


# ------------------------------------------------------------------ P2


def _mi_scores(samples: Sequence[dict[str, Any]], attack: str | None
               ) -> dict[tuple[str, str, str], dict[str, tuple[float, int]]]:
    """(model, precision, seed) -> sample id -> (score of `attack`, label)."""
    out: dict[tuple[str, str, str], dict[str, tuple[float, int]]] = defaultdict(dict)
    for r in samples:
        v = r.get(attack) if attack else None
        if r.get("kind") == "mi" and v is not None and np.isfinite(v):
            out[(str(r.get("model")), str(r.get("precision")), str(r.get("seed", "")))][str(r.get("sample_id"))] = (
                float(v), int(r["label"]))
    return out


@register_claim("P2")
def p2_zlib_strongest(rows: RunRows) -> Finding:
    statement = "zlib is the strongest membership-inference attack."
    m = margin("auc")
    test = (f"per (model, precision): AUC(zlib) − AUC(rival) on the same samples, rival = the other attack with the "
            f"highest mean AUC; DeLong se within seeds joined with the seeds' t interval, Bonferroni intervals and "
            f"Holm p over cells; holds: zlib ahead beyond ±{m} somewhere, never behind beyond it")
    attacks = rows.attacks()
    if "zlib" not in attacks or len(attacks) < 2:
        return untestable("P2", statement, test, "zlib was not run" if "zlib" not in attacks else
                          "zlib is the only attack in this run")
    mean = {a: float(np.mean([x["value"] for x in rows.named("auc", "privacy") if _lab(x, "attack") == a])) for a in attacks}
    rival = max((a for a in attacks if a != "zlib"), key=mean.__getitem__)
    ok, notes = privacy_gate(rows, best_attack(rows) or "zlib")
    z, r = _mi_scores(rows.privacy, "zlib"), _mi_scores(rows.privacy, rival)
    cells: dict[tuple[str, str], list[tuple[str, float, float, int, str]]] = defaultdict(list)
    for key in sorted(set(z) & set(r)):
        model, prec, seed = key
        if (model, seed) not in ok:
            continue
        ids = sorted(set(z[key]) & set(r[key]))
        y = np.array([z[key][i][1] for i in ids])
        if (y == 1).sum() < 2 or (y == 0).sum() < 2:
            continue
        d = delong_test([z[key][i][0] for i in ids], [r[key][i][0] for i in ids], y)
        cells[(model, prec)].append((seed, d.delta, max(d.se, 1e-12), len(ids), ""))
    if not cells:
        return untestable("P2", statement, test, "no cell with per-sample scores of zlib and " + rival
                          + (f" that passes the gate ({'; '.join(notes)})" if notes else ""))
    level = family_level(len(cells))
    comps = []
    for (model, prec), per_seed in sorted(cells.items()):
        est, lo, hi, p = _combine(per_seed, level)
        comps.append(Comparison(f"{prec} ({model}) vs {rival}", est, lo, hi, p, min(x[3] for x in per_seed), len(per_seed)))
    extra = f"mean AUC zlib {fmt(mean['zlib'])} vs {rival} {fmt(mean[rival])}"
    return decide("P2", statement, test, comps, m, +1, holm([c.p for c in comps]),
                  extra="; ".join(x for x in (extra, _gate_note(notes)) if x))


# ------------------------------------------------------------------ P3


@register_claim("P3")
def p3_quality_risk_correlation(rows: RunRows) -> Finding:
    statement = "Code-completion quality and MI risk correlate positively across precisions."
    m = margin("rho")
    test = (f"Spearman ρ of quality = −(held-out non-member NLL) vs the strongest attack's AUC over (model, precision) "
            f"points (means over seeds; ranks within each model, model as a fixed effect), exact within-model "
            f"permutation p; holds: ρ ≥ {m} and p ≤ {ALPHA}; does not hold: ρ < 0 with p ≤ {ALPHA}, or the Fisher "
            f"interval (se 1.06/√(n−3)) inside ±{m}; degraded precisions left out; CodeBLEU's ρ (the summary's) beside it")
    from quantrisk.stats import spearman, within_group_correlation

    if rows.missing_summary():
        return untestable("P3", statement, test, str(rows.missing_summary()))
    attack = best_attack(rows)
    ok, notes = privacy_gate(rows, attack)
    auc: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for x in rows.named("auc", "privacy"):
        if _lab(x, "attack") == attack and (_lab(x, "model"), _lab(x, "seed")) in ok:
            auc[(_lab(x, "model"), _lab(x, "precision"))].append((_lab(x, "seed"), float(x["value"])))
    nll = _per_cell(rows, "nonmember_nll")
    points, left_out = [], []
    seeds_used: set[str] = set()
    for (model, prec), vals in sorted(auc.items()):
        base = baseline_precision(p for (mo, p) in auc if mo == model)
        q = [nll[(model, prec, s)] for s, _ in vals if (model, prec, s) in nll]
        if base is None or len(q) != len(vals):
            continue
        if prec != base and privacy_utility(rows, model, prec, base, [s for s, _ in vals])[1]:
            left_out.append(f"{prec} ({model})")
            continue
        seeds_used |= {s for s, _ in vals}
        points.append((model, -float(np.mean(q)), float(np.mean([v for _, v in vals]))))
    n_seeds = len(seeds_used)
    cb = next(iter(rows.summary_named("spearman_r")), None)
    side = f"CodeBLEU ρ = {fmt(cb['value'])} (summary, not deciding)" if cb is not None else "no CodeBLEU ρ in the summary"
    extra = "; ".join(x for x in (side, f"degraded, left out: {', '.join(left_out)}" if left_out else "",
                                  _gate_note(notes), seeds_note(n_seeds) if n_seeds else "") if x)
    if len(points) < 4:
        return untestable("P3", statement, test, f"needs ≥ 4 (model, precision) points with non-member NLL and AUC "
                          f"that pass the gate, got {len(points)}; {extra}", n_seeds or None)
    groups = [g for g, _, _ in points]
    x, y = [q for _, q, _ in points], [a for _, _, a in points]
    try:
        c = within_group_correlation(x, y, groups) if len(set(groups)) > 1 else spearman(x, y)
    except ValueError as exc:
        return untestable("P3", statement, test, f"ρ undefined: {exc}; {extra}", n_seeds)
    rho, p, n = c.r, c.p_value, c.n
    interval = fisher_interval(rho, n)
    if rho >= m and p <= ALPHA:
        verdict = HOLDS
    elif (rho < 0 and p <= ALPHA) or (interval is not None and -m < interval[0] and interval[1] < m):
        verdict = NOT
    else:
        verdict = INCONCLUSIVE
    ci_text = (f"Fisher 95% [{fmt(interval[0])}, {fmt(interval[1])}]" if interval is not None else
               f"Fisher interval undefined at |ρ| = 1 (n = {n}): it would collapse to a point")
    why = f"ρ = {fmt(rho)} over {n} points ({c.method} p = {fmt(p)}; {ci_text}); {extra}"
    return Finding("P3", statement, test, rho, list(interval) if interval else None, p, verdict, why, n_seeds,
                   "Fisher 95% CI (unadjusted)")


def fisher_interval(rho: float, n: int) -> tuple[float, float] | None:
    """95% interval of a Spearman ρ from `n` points: tanh(atanh ρ ± 1.96 · 1.06/√(n − 3)) (Fieller, Hartley & Pearson
    1957's se for ranks). None where it is undefined: |ρ| = 1 (atanh is infinite; the interval would be the point
    ±1) or n ≤ 3."""
    if n <= 3 or not math.isfinite(rho) or abs(rho) >= 1 - 1e-12:
        return None
    zr, se = math.atanh(rho), 1.06 / math.sqrt(n - 3)
    return math.tanh(zr - 1.96 * se), math.tanh(zr + 1.96 * se)


# ------------------------------------------------------------------ P4


@register_claim("P4")
def p4_larger_quantized_beats_smaller_full(rows: RunRows) -> Finding:
    statement = "A larger quantized model beats a smaller full-precision one on the quality/risk trade-off."
    ma, mq = margin("auc"), MARGINS["nll"].value
    test = (f"every (larger model (≥ {MIN_SIZE_RATIO}x the parameters) at a quantized precision, smaller model at full "
            f"precision) pair, per seed on the shared samples: ΔAUC = AUC(larger) − AUC(smaller) of the strongest "
            f"attack (paired DeLong) and Δquality = NLL(smaller) − NLL(larger) over the shared non-members (per-sample "
            f"−loss score, paired); seeds joined as in P1, Bonferroni over pairs; holds: ΔAUC CI < +{ma} and Δquality "
            f"CI > −{mq:.3f} (not riskier, not worse); does not hold: ΔAUC CI > +{ma} or Δquality CI < −{mq:.3f}")
    if rows.missing_summary():
        return untestable("P4", statement, test, str(rows.missing_summary()))
    attack = best_attack(rows)
    size: dict[str, list[float]] = defaultdict(list)
    for x in rows.named("fp16_weight_mb", "privacy"):
        size[_lab(x, "model")].append(float(x["value"]))
    mb = {k: float(np.mean(v)) for k, v in size.items()}
    if len(mb) < 2:
        return untestable("P4", statement, test, f"needs at least two models of different sizes; this run has {len(mb)}")
    if max(mb.values()) < MIN_SIZE_RATIO * min(mb.values()):
        return untestable("P4", statement, test, f"the models differ in size by less than {MIN_SIZE_RATIO}x ("
                          + ", ".join(f"{k}: {v:.2f} MB fp16" for k, v in sorted(mb.items())) + ")")
    ok, notes = privacy_gate(rows, attack)
    scores, loss = _mi_scores(rows.privacy, attack), _mi_scores(rows.privacy, "loss")
    nll_rows = {(_lab(x, "model"), _lab(x, "precision"), _lab(x, "seed")): x for x in rows.named("nonmember_nll", "privacy")}
    quality_how: set[str] = set()
    pairs: dict[str, list[tuple[str, tuple[float, float], tuple[float, float], int]]] = defaultdict(list)
    util: dict[str, tuple[str, bool]] = {}
    for big, small in ((b, s) for b in mb for s in mb if mb[b] >= MIN_SIZE_RATIO * mb[s]):
        base = baseline_precision(p for (mo, p, _) in scores if mo == small)
        big_base = baseline_precision(p for (mo, p, _) in scores if mo == big)
        for (mo, prec, seed) in sorted(scores):
            if mo != big or not is_quantized(prec) or base is None or (small, base, seed) not in scores:
                continue
            if (big, seed) not in ok or (small, seed) not in ok:
                continue
            got = _p4_seed(scores[(big, prec, seed)], scores[(small, base, seed)], loss.get((big, prec, seed)),
                           loss.get((small, base, seed)), nll_rows.get((big, prec, seed)), nll_rows.get((small, base, seed)))
            if got is None:
                continue
            if got[3]:
                quality_how.add(got[3])
            got = got[:3]
            where = f"{big}@{prec} vs {small}@{base}"
            pairs[where].append((seed, *got))
            if big_base is not None:
                util[where] = privacy_utility(rows, big, prec, big_base, [s for s, *_ in pairs[where]])
    if not pairs:
        return untestable("P4", statement, test, "no (larger quantized, smaller full-precision) pair with ≥ "
                          f"{MIN_PAIRED} shared samples and a quality measure (per-sample loss scores, or "
                          "non-member NLL rows with a CI)" + (f"; {_gate_note(notes)}" if notes else ""))
    good = {w: v for w, v in pairs.items() if not util.get(w, ("", False))[1]}
    level = family_level(len(good))
    comps, classes, risk_txt = [], [], []
    for where, per_seed in sorted(good.items()):
        r = _combine([(s, d[0], d[1], n, "") for s, d, _, n in per_seed], level)
        q = _combine([(s, d[0], d[1], n, "") for s, _, d, n in per_seed], level)
        if r[2] < ma and q[1] > -mq:
            classes.append(HOLDS)
        elif r[1] > ma or q[2] < -mq:
            classes.append(NOT)
        else:
            classes.append(INCONCLUSIVE)
        u = util.get(where, ("", False))[0]
        comps.append(Comparison(where + " (Δquality)", q[0], q[1], q[2], max(r[3], q[3]),
                                min(n for *_, n in per_seed), len(per_seed), u))
        risk_txt.append(f"{where}: ΔAUC {fmt(r[0])} [{fmt(r[1])}, {fmt(r[2])}]")
    deg = [Comparison(w, 0.0, 0.0, 0.0, 1.0, 0, len(v), util[w][0], True) for w, v in pairs.items() if w not in good]
    if not comps:
        return untestable("P4", statement, test, "every larger quantized model is degraded: "
                          + "; ".join(describe(c) for c in deg))
    f = decide("P4", statement, test, comps, mq, +1, holm([c.p for c in comps]), degraded=deg, classes=classes,
               extra="; ".join(x for x in ("risk: " + "; ".join(risk_txt), "; ".join(sorted(quality_how)),
                                           _cb_note(rows, good), _gate_note(notes)) if x))
    f.ci_label = ci_label(len(comps)) + " of Δquality (nats/token)"
    return f


def _cb_note(rows: RunRows, pairs: dict[str, Any]) -> str:
    """ΔCodeBLEU (larger quantized − smaller full precision, mean over seeds) of each pair, beside the NLL."""
    cb = _per_cell(rows, "codebleu")
    out = []
    for where in sorted(pairs):
        (big, bp), (small, sp) = (x.split("@", 1) for x in where.split(" vs "))
        d = [cb[(big, bp, s)] - cb[(small, sp, s)] for (m, p, s) in cb if (m, p) == (big, bp) and (small, sp, s) in cb]
        if d:
            out.append(f"{where}: ΔCodeBLEU {formats.delta(float(np.mean(d)))}")
    return ("CodeBLEU beside it (not deciding): " + "; ".join(out)) if out else ""


def _p4_seed(big: dict[str, tuple[float, int]], small: dict[str, tuple[float, int]],
             big_loss: dict[str, tuple[float, int]] | None, small_loss: dict[str, tuple[float, int]] | None,
             big_nll: dict[str, Any] | None = None, small_nll: dict[str, Any] | None = None,
             ) -> tuple[tuple[float, float], tuple[float, float], int, str] | None:
    """((ΔAUC, se), (Δquality, se), n, how quality was measured when not paired) of one seed on the shared samples
    (None without enough of them). Quality: the per-sample loss score on the shared non-members (paired); without
    loss scores, the stored `nonmember_nll` rows and their 95% CIs (se = width / 3.92, combined as independent)."""
    ids = sorted(i for i in set(big) & set(small) if big[i][1] == small[i][1])  # the same sample, the same role
    y = np.array([big[i][1] for i in ids])
    if len(ids) < MIN_PAIRED or (y == 1).sum() < 2 or (y == 0).sum() < 2:
        return None
    d = delong_test([big[i][0] for i in ids], [small[i][0] for i in ids], y)
    se_r = d.se if d.se > 0 else _se_floor(len(ids))
    non = [i for i in ids if big[i][1] == 0 and big_loss and small_loss and i in big_loss and i in small_loss]
    if len(non) >= 2:
        # loss score = mean log-likelihood per token = −NLL, so NLL(small) − NLL(large) = loss(large) − loss(small)
        dq = np.array([big_loss[i][0] - small_loss[i][0] for i in non])  # type: ignore[index]
        se_q = float(dq.std(ddof=1) / math.sqrt(dq.size)) or 1e-12
        return (d.delta, se_r), (float(dq.mean()), se_q), len(ids), ""
    rows = (big_nll, small_nll)
    if any(r is None or r.get("ci_low") is None or r.get("ci_high") is None for r in rows):
        return None
    se = [(r["ci_high"] - r["ci_low"]) / 3.92 for r in rows]  # type: ignore[index]
    dq_mean = float(small_nll["value"] - big_nll["value"])  # type: ignore[index]
    return ((d.delta, se_r), (dq_mean, math.hypot(*se) or 1e-12), len(ids),
            "quality from the stored non-member NLL rows (unpaired: no loss scores)")
