"""The report's first screen: per study, the baseline, the largest change against it with its (unadjusted) 95% CI
and the utility change of the same cell, and one sentence; plus the Findings (claims with verdicts) when the run has
them. The same lines end `demo`, `run` and `report` on the terminal (`headline_lines`).

A risk change is never told without its utility: a precision whose utility collapsed past the margins of
`quantrisk.margins` (non-member NLL; clean-input EX/EM, output length) is called degraded, and no sentence says a
precision "lowered" a risk or weakened a backdoor without saying what it cost the model; none says "removed"."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from quantrisk import formats as F
from quantrisk.margins import ALPHA, MARGINS  # the page's one significance level and the claims' margins
from quantrisk.report.tables import bits_of, rate_delta, trojan_baseline, trojan_cells
from quantrisk.store import Store

AUC_MARGIN = MARGINS["auc"].value  # a ΔAUC inside ±this is no change (the Findings' P1/P2 margin)

# Finding dicts (from the findings module, or RUN/report/findings.json) carry these keys.
FINDING_KEYS: tuple[str, ...] = ("claim", "statement", "test", "effect", "ci", "p", "verdict", "why", "n_seeds", "ci_label",
                                 "utility")


@dataclass(frozen=True)
class Headline:
    """One study's result for one subject (a model, or a model's poisoned fine-tune)."""

    study: str          # privacy | trojan
    subject: str        # e.g. "pythia-tiny" or "llama-tiny (poisoned, DAP1 fp32)"
    baseline: str       # e.g. "fp32: zlib AUC 0.800 [0.750, 0.850]"
    change: str         # e.g. "rtn-w2g64: ΔAUC -0.250 [-0.321, -0.179]"
    sentence: str

    def line(self) -> str:
        return f"{self.study} · {self.subject}: baseline {self.baseline}; largest change {self.change}. {self.sentence}"


def _f(x: float, signed: bool = False, digits: int = 3) -> str:
    """A value in the report's one format (`quantrisk.formats`; `digits` is kept for callers, always 3)."""
    return F.delta(x) if signed else F.prob(x)


def _ci(lo: float, hi: float, signed: bool = False, digits: int = 3) -> str:
    """An interval whose bounds keep their side of 0 (`formats.interval`, plain spaces)."""
    return F.interval(lo, hi, signed).replace(F.NBSP, " ")


def _mean_rows(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple[str, ...], tuple[float, float | None, float | None]]:
    acc: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        acc[tuple(str(r["labels"].get(k, "")) for k in keys)].append(r)
    out = {}
    for k, rs in acc.items():
        lo = [r["ci_low"] for r in rs if r["ci_low"] is not None]
        hi = [r["ci_high"] for r in rs if r["ci_high"] is not None]
        out[k] = (sum(r["value"] for r in rs) / len(rs), sum(lo) / len(lo) if len(lo) == len(rs) else None,
                  sum(hi) / len(hi) if len(hi) == len(rs) else None)
    return out


def _privacy_utility(store: Store, model: str, precision: str, base: str) -> tuple[str, bool]:
    """(text, degraded) of the utility change at (model, precision) vs `base`: Δ non-member NLL and ΔCodeBLEU
    (means over seeds)."""
    from quantrisk.margins import DEGRADED_NLL

    parts, degraded = [], False
    for name, label, unit in (("nonmember_nll", "ΔNLL", " nats/token"), ("codebleu", "ΔCodeBLEU", "")):
        v = _mean_rows(store.metrics(kind="privacy", name=name), ("model", "precision"))
        if (model, precision) in v and (model, base) in v:
            delta = v[(model, precision)][0] - v[(model, base)][0]
            parts.append(f"{label} {F.delta(delta)}{unit}")
            degraded = degraded or (name == "nonmember_nll" and delta > DEGRADED_NLL)
    if degraded:
        parts.append("degraded")
    return (", ".join(parts) if parts else "not measured"), degraded


def privacy_headlines(store: Store, paired_rows: list[dict[str, Any]] | None = None) -> list[Headline]:
    """Per model: the baseline (highest-bit precision) AUC of the strongest attack, and the (precision, attack) whose
    AUC moved most against the baseline. The Δ's CI is the stored paired one (`delta_auc`) when the run has it,
    (`paired_rows`: the run's paired comparisons, `findings.RunRows.paired()`), else the two bootstrap CIs combined
    in quadrature (labelled: unpaired, approximate)."""
    from quantrisk.report.plots import best_attack

    auc = _mean_rows(store.metrics(kind="privacy", name="auc"), ("model", "attack", "precision"))
    rows = paired_rows if paired_rows is not None else store.metrics(kind="privacy-summary")
    paired = _mean_rows([m for m in rows if m["name"] == "delta_auc"], ("model", "attack", "precision"))
    holm_p = _largest_p(rows, "delong_p_holm")
    best = best_attack(store)
    out = []
    for model in sorted({k[0] for k in auc}):
        precs = sorted({k[2] for k in auc if k[0] == model}, key=lambda p: (-bits_of(p), p))
        base = precs[0]
        attack = best if (model, best, base) in auc else next(k[1] for k in auc if k[0] == model)
        v, lo, hi = auc[(model, attack, base)]
        baseline = f"{base}: {attack} AUC {_f(v)}" + (f" {_ci(lo, hi)}" if lo is not None and hi is not None else "")
        deltas = []
        for (m, a, p), (val, plo, phi) in auc.items():
            if m != model or p == base or (m, a, base) not in auc:
                continue
            b, blo, bhi = auc[(m, a, base)]
            if (m, a, p) in paired and paired[(m, a, p)][1] is not None:
                d, dlo, dhi = paired[(m, a, p)]
                how = "paired"
            elif None not in (plo, phi, blo, bhi):
                d = val - b
                half = (((phi - plo) / 2) ** 2 + ((bhi - blo) / 2) ** 2) ** 0.5
                dlo, dhi, how = d - half, d + half, "unpaired approx."
            else:
                d, dlo, dhi, how = val - b, None, None, "no CI"
            deltas.append((abs(d), p, a, d, dlo, dhi, how, b, val))
        if not deltas:
            out.append(Headline("privacy", model, baseline, "none (one precision only)",
                                "Add precisions to compare against the baseline."))
            continue
        _, p, a, d, dlo, dhi, how, b, val = max(deltas, key=lambda t: (t[0], -bits_of(t[1])))
        ci = f" {_ci(dlo, dhi, True)} ({how}, unadjusted 95% CI)" if dlo is not None else " (no CI)"
        util, degraded = _privacy_utility(store, model, p, base)
        hp = holm_p.get((model, a, p))
        test = f"DeLong p {F.pvalue(hp)}, Holm-adjusted" if hp is not None else ""
        change = f"{p} ({bits_of(p)} bit) {a} ΔAUC {_f(d, True)}{ci}" + (f", {test}" if test else "") + \
            f"; utility: {util}"
        excludes = dlo is not None and (dlo > 0 or dhi < 0)
        # one standard with the Findings: a change counts where its Holm-adjusted DeLong p is <= ALPHA (only a run
        # without stored tests falls back to the unadjusted CI, and says so) AND it lies beyond the claims' decision
        # margin (the whole interval outside ±MARGIN): a significant change inside the margin is not a finding
        significant = hp <= ALPHA if hp is not None else excludes
        beyond = dlo is not None and (dlo > AUC_MARGIN or dhi < -AUC_MARGIN)
        moved = significant and beyond
        why = (f"significant: {test} ≤ {ALPHA:g}" if hp is not None else "its unadjusted 95% CI excludes 0; no "
               "adjusted test stored") + f", and beyond the ±{AUC_MARGIN:g} margin"
        if significant and not beyond:
            sentence = (f"No precision moved MI AUC beyond the ±{AUC_MARGIN:g} decision margin: the largest change "
                        f"({p}, {a}: {_f(b)} → {_f(val)}) is "
                        + (f"significant ({test} ≤ {ALPHA:g}) " if hp is not None else "outside 0 (unadjusted CI) ")
                        + f"but its interval reaches inside ±{AUC_MARGIN:g}, so it is not a finding at this standard"
                        f" (utility: {util}).")
        elif moved:
            if degraded:
                sentence = (f"{p} moved the {a} AUC from {_f(b)} to {_f(val)} ({why}), but it broke the model "
                            f"({util}): a degraded model, not a lower risk.")
            elif d > 0:
                sentence = f"{p} raised the {a} AUC from {_f(b)} to {_f(val)} ({why}; {util})."
            else:
                sentence = (f"{p} lowered the {a} AUC from {_f(b)} to {_f(val)} ({why}), at a utility cost of "
                            f"{util}.")
        elif hp is not None:
            sentence = (f"No precision moved MI AUC significantly (Holm-adjusted DeLong p ≤ {ALPHA:g}): the largest "
                        f"change ({p}, {a}) has {test}" + (", although its unadjusted 95% CI excludes 0 (not a "
                                                          "finding at this standard)." if excludes else "."))
        else:
            sentence = (f"No precision moved MI AUC distinguishably: the largest change ({p}, {a}) has an unadjusted "
                        "95% CI that includes 0." if dlo is not None else
                        f"{p} moved the {a} AUC from {_f(b)} to {_f(val)} ({util}).")
        others = [t for t in deltas if (t[1], t[2]) != (p, a)]
        if hp is not None:
            n_sig = sum(1 for t in others if holm_p.get((model, t[2], t[1]), 1.0) <= ALPHA and t[4] is not None
                        and (t[4] > AUC_MARGIN or t[5] < -AUC_MARGIN))
            sentence += (f" {n_sig} of the other {len(others)} (precision, attack) changes are significant and beyond "
                         "the margin" + (" too." if moved else "."))
        else:
            n_other = sum(1 for t in others if t[4] is not None and t[4] <= 0 <= t[5])
            if n_other:
                sentence += (f" {n_other} of the other {len(others)} (precision, attack) changes have unadjusted "
                             "CIs that include 0.")
        out.append(Headline("privacy", model, baseline, change, sentence))
    return out


def _largest_p(rows: list[dict[str, Any]], name: str) -> dict[tuple[str, str, str], float]:
    """(model, attack, precision) -> the largest `name` p-value over its seeds (a change counts only where it
    counts at every seed)."""
    out: dict[tuple[str, str, str], float] = {}
    for m in rows:
        lab = m.get("labels") or {}
        if m["name"] == name and m["value"] is not None and all(k in lab for k in ("model", "attack", "precision")):
            k = (str(lab["model"]), str(lab["attack"]), str(lab["precision"]))
            out[k] = max(out.get(k, 0.0), float(m["value"]))
    return out


def _paired_asr(samples: list[dict[str, Any]], key: tuple[str, ...], base: tuple[str, ...]
                ) -> tuple[float, float, float] | None:
    """(ΔASR, low, high) of cell `key` minus cell `base` on the triggered prompts both answered, Newcombe's paired
    95% interval (`proportions.newcombe_paired_diff_ci`); None without per-prompt rows."""
    from quantrisk.proportions import newcombe_paired_diff_ci

    def hits(k: tuple[str, ...]) -> dict[str, bool]:
        return {str(r["prompt_id"]): bool(r.get("payload")) for r in samples
                if r.get("input") == "triggered" and "payload" in r and "prompt_id" in r
                and tuple(str(r.get(f, "")) for f in ("model", "kind", "dap1", "dap2", "seed")) == k}

    a, b = hits(key), hits(base)
    ids = sorted(set(a) & set(b))
    if not ids:
        return None
    both = sum(a[i] and b[i] for i in ids)
    first = sum(a[i] and not b[i] for i in ids)
    second = sum(b[i] and not a[i] for i in ids)
    return newcombe_paired_diff_ci(both, first, second, len(ids) - both - first - second)


def _asr_changes(cells: dict[tuple[str, ...], Any], samples: list[dict[str, Any]], keys: list[tuple[str, ...]],
                 base: tuple[str, ...], d1: str) -> list[tuple[tuple[str, ...], tuple[float, float, float], str]]:
    """(cell, (ΔASR, low, high), how) of every DAP2 cell of `keys` at DAP1 `d1` against `base`: Newcombe's paired
    interval on the same prompts, or the unpaired one (labelled) without per-prompt rows."""
    out = []
    for k in keys:
        if k == base or k[2] != d1 or "asr" not in cells[k]:
            continue
        paired = _paired_asr(samples, k, base)
        d = paired if paired is not None else rate_delta(cells, k, "asr", "triggered")
        if d is not None:
            out.append((k, d, "paired" if paired is not None else "unpaired"))
    return out


def trojan_headlines(store: Store) -> list[Headline]:
    """Per (model, kind, DAP1, seed): the baseline cell's ASR (DAP1 = DAP2 = full precision) and the DAP2 whose ASR
    moved most against it, with Newcombe's paired 95% interval on the same prompts (the independent-samples one,
    labelled, when the store has no per-prompt rows) and the clean-input utility of that cell (EX, EM, output length;
    degraded past `quantrisk.margins`); clean fine-tunes get their largest ASR."""
    from quantrisk.findings import RunRows
    from quantrisk.findings.trojan import trojan_utility

    cells = trojan_cells(store)
    samples = [r for _, r in store.samples(kind="trojan")]
    rows = RunRows([], [], samples)
    groups: dict[tuple[str, str, str, str], list[tuple[str, ...]]] = defaultdict(list)
    for k in cells:
        groups[(k[0], k[1], k[2], k[4])].append(k)
    out = []
    for (model, kind, d1, seed), keys in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] != "poisoned", g[0])):
        base = trojan_baseline(cells, keys[0])
        subject = f"{model} ({kind}, DAP1 {d1}" + (f", seed {seed})" if len({g[3] for g in groups}) > 1 else ")")
        if base is None or "asr" not in cells[base]:
            continue
        b = cells[base]["asr"]
        n = cells[base].get("n_inputs[input=triggered]", {}).get("value")
        baseline = (f"{base[3]}→{base[3]}: ASR {_f(b['value'], digits=2)}"
                    + (f" {_ci(b['ci_low'], b['ci_high'], digits=2)}" if b["ci_low"] is not None else "")
                    + (f" n={int(n)}" if n else ""))
        deltas = _asr_changes(cells, samples, keys, base, d1)
        if not deltas:
            out.append(Headline("trojan", subject, baseline, "none (no other DAP2)", "Add DAP2 precisions to compare."))
            continue
        k, (d, lo, hi), how = max(deltas, key=lambda t: (abs(t[1][0]), -bits_of(t[0][3])))
        val = cells[k]["asr"]["value"]
        util = trojan_utility(rows, model, d1, k[3], [seed], kind=kind)
        measured = util.ex is not None or util.em is not None or util.steps is not None
        change = (f"DAP2 {k[3]} ({bits_of(k[3])} bit) ΔASR {_f(d, True, 2)} {_ci(lo, hi, True, 2)} "
                  f"({how}, unadjusted 95% CI); utility: {util.text() if measured else 'not measured'}")
        kept = [x[3] for x, (dd, ll, hh), _ in deltas if ll <= 0 <= hh]
        asr = f"ASR {_f(b['value'], digits=2)} → {_f(val, digits=2)}"
        if kind != "poisoned":
            top = max([cells[x]["asr"]["value"] for x in keys])
            sentence = (f"The clean fine-tune emits the payload on at most {top:.0%} of triggered inputs at any DAP2"
                        + (" (never)." if top == 0 else "."))
        elif (lo > 0 or hi < 0) and util.degraded:
            sentence = (f"{k[3]} inference broke the model ({util.text()}): {asr} comes with a degraded model, not a "
                        "removed backdoor.")
        elif lo > 0 or hi < 0:
            verb = "weakened" if d < 0 else "strengthened"
            cost = (f"clean-input utility {util.text()}" if measured else
                    "its clean-input utility was not measured, so this is no evidence the model still works")
            sentence = (f"{k[3]} inference {verb} the backdoor: {asr}, its unadjusted 95% CI excludes 0 (T1 in the "
                        f"Findings is the adjusted test); {cost}.")
        else:
            sentence = "No inference precision changed ASR distinguishably (every unadjusted 95% CI includes 0)."
        if kind == "poisoned" and kept:
            sentence += f" Kept it (unadjusted CI includes 0): {', '.join(kept)}."
        out.append(Headline("trojan", subject, baseline, change, sentence))
    return out


def study_headlines(store: Store, paired_rows: list[dict[str, Any]] | None = None) -> list[Headline]:
    return privacy_headlines(store, paired_rows) + trojan_headlines(store)


def _num(x: Any) -> str:
    return F.bound(x, signed=x < 0) if isinstance(x, float) else str(x)


def finding_evidence(f: dict[str, Any]) -> str:
    """The why of a finding with its effect, CI and p: `zlib first in 3 of 3 cells (effect 0.06; p 0.0001)`."""
    line = finding_line(f)
    return line.split(": ", 1)[1].split(" — ", 1)[1] if " — " in line else line.split(": ", 1)[1]


def finding_line(f: dict[str, Any], with_test: bool = False) -> str:
    """`P1 holds: quantization lowers MI risk — why (effect -0.25; 95% CI [-0.3, -0.2]; p 0.003; n_seeds 3; utility
    ΔNLL +0.01 nats/token)`, the interval as the finding labels it (simultaneous or unadjusted); `with_test` adds the
    test used (the report has room for it, the terminal does not)."""
    bits = []
    if f.get("effect") is not None:
        bits.append(f"effect {_num(f['effect'])}")
    ci = f.get("ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci:
        signed = min(ci) < 0
        bits.append(f"{f.get('ci_label') or 'CI'} [{F.bound(ci[0], signed)}, {F.bound(ci[1], signed)}]")
    if f.get("p") is not None:
        bits.append(f"p {F.pvalue(f['p'])}")
    if f.get("n_seeds"):
        bits.append(f"n_seeds {f['n_seeds']}")
    if f.get("utility"):
        bits.append(f"utility {f['utility']}")
    if with_test and f.get("test"):
        bits.insert(0, f"test: {f['test']}")
    why = f" — {f['why']}" if f.get("why") else ""
    detail = f" ({'; '.join(bits)})" if bits else ""
    return f"{f.get('claim', '?')} {f.get('verdict', '?')}: {str(f.get('statement', '')).rstrip('.')}{why}{detail}"


def headline_lines(store: Store, findings: list[dict[str, Any]] | None = None,
                   paired_rows: list[dict[str, Any]] | None = None) -> list[str]:
    """The lines `demo`, `run` and `report` print at the end (the report's first section, as text)."""
    lines = [finding_line(f) for f in findings or []]
    return lines + [h.line() for h in study_headlines(store, paired_rows)]


def _seeds_text(seeds: list[str]) -> str:
    return f"{len(seeds)} seed" + ("s" if len(seeds) != 1 else "")


def trojan_bottom_lines(store: Store) -> list[str]:
    """One sentence per (model, kind, DAP1) over all its seeds: for a poisoned fine-tune, at how many seeds the
    backdoor implanted (full-precision ASR ≥ IMPLANT_MIN_ASR) and, per DAP2, at how many seeds inference weakened,
    strengthened or kept it (paired 95% interval on the same prompts, unadjusted: T1 is the adjusted test), or broke
    the model (clean-input utility degraded); for a clean fine-tune, the largest payload rate at any DAP2."""
    from quantrisk.findings import RunRows
    from quantrisk.findings.trojan import trojan_utility
    from quantrisk.margins import IMPLANT_MIN_ASR

    cells = trojan_cells(store)
    samples = [r for _, r in store.samples(kind="trojan")]
    rows = RunRows([], [], samples)
    groups: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for k in cells:
        groups[(k[0], k[1], k[2])].add(k[4])
    out = []
    for (model, kind, d1), seed_set in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] != "poisoned", g[0])):
        seeds = sorted(seed_set)
        subject = f"Trojan · {model} ({kind}, DAP1 {d1}, {_seeds_text(seeds)})"
        if kind != "poisoned":
            top = max(cells[k]["asr"]["value"] for k in cells if k[:3] == (model, kind, d1) and "asr" in cells[k])
            out.append(f"{subject}: the clean fine-tunes emit the payload on at most {top:.0%} of triggered inputs at "
                       "any DAP2" + (" (never)." if top == 0 else "."))
            continue
        base_asr: dict[str, float] = {}
        by_dap2: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for seed in seeds:
            keys = [k for k in cells if k[:3] == (model, kind, d1) and k[4] == seed]
            base = trojan_baseline(cells, keys[0]) if keys else None
            if base is None or "asr" not in cells[base]:
                continue
            base_asr[seed] = cells[base]["asr"]["value"]
            for k, (_, lo, hi), _ in _asr_changes(cells, samples, keys, base, d1):
                util = trojan_utility(rows, model, d1, k[3], [seed], kind=kind)
                how = ("broke the model" if (lo > 0 or hi < 0) and util.degraded else
                       "weakened" if hi < 0 else "strengthened" if lo > 0 else "kept")
                by_dap2[k[3]][how].append(f"{_f(base_asr[seed], digits=2)} → {_f(cells[k]['asr']['value'], digits=2)}")
        if not base_asr:
            continue
        implanted = [s for s in seeds if base_asr.get(s, 0.0) >= IMPLANT_MIN_ASR]
        parts = [f"the backdoor implanted at {len(implanted)} of {len(seeds)} seeds (full-precision ASR "
                 + ", ".join(_f(base_asr[s], digits=2) for s in seeds if s in base_asr) + ")"]
        kept_all = []
        for dap2 in sorted(by_dap2, key=lambda p: (-bits_of(p), p)):
            hows = by_dap2[dap2]
            if set(hows) == {"kept"}:
                kept_all.append(dap2)
                continue
            said = [f"{how} it at {len(v)} of {len(seeds)} (ASR {', '.join(v)})" for how, v in hows.items()
                    if how != "kept"] + ([f"kept it at {len(hows['kept'])}"] if hows.get("kept") else [])
            util = trojan_utility(rows, model, d1, dap2, seeds, kind=kind)
            measured = util.ex is not None or util.em is not None or util.steps is not None
            parts.append(f"{dap2} " + "; ".join(said)
                         + (f", clean-input utility {util.text()}" if measured else ", clean-input utility not measured"))
        if kept_all:
            parts.append(f"{', '.join(kept_all)} kept it at every seed")
        out.append(f"{subject}: " + "; ".join(parts) + " (paired 95% CIs, unadjusted; T1 in the Findings is the "
                   "adjusted test).")
    return out


def bottom_lines(store: Store, heads: list[Headline], found: list[dict[str, Any]]) -> list[str]:
    """The bottom line: per privacy subject its headline sentence; per trojan (model, kind, DAP1) one sentence over
    all seeds (`trojan_bottom_lines`)."""
    lines = [f"{h.study.title()} · {h.subject}: {h.sentence}" for h in heads if h.study != "trojan"]
    return lines + trojan_bottom_lines(store)
