"""Operating characteristics of the Findings' decision rules: each rule (the real claim function of
`quantrisk.findings`) on simulated rows shaped like the demo's (read from its spec: the privacy models, n members +
n non-members, 8-bit and 4-bit; trojan: its test prompts per seed; 3 seeds), under a null, an effect at the margin and an effect at twice the margin; the share
of replicates that get each verdict, with its 95% Wilson interval. docs/METRICS.md ("Operating characteristics")
holds the table this prints.

    python -m benchmarks verdicts [--reps 200] [--seeds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from quantrisk.findings import CLAIMS, VERDICTS, RunRows
from quantrisk.margins import MARGINS
from quantrisk.proportions import wilson_ci
from quantrisk.stats import auc_se, delong_test, fast_auc


def demo_shape() -> tuple[int, int, tuple[str, ...]]:
    """(members = non-members per (model, seed), triggered test prompts per seed, the privacy models) of the demo
    spec, so the simulation has the shape of what `quantrisk demo` decides (one source: specs/demo.yaml)."""
    from quantrisk.config import builtin_spec_path, load_spec

    spec = load_spec(builtin_spec_path("demo"))
    privacy, trojan = spec.studies.privacy, spec.studies.trojan
    return privacy.n, trojan.n_test, tuple(privacy.models or [m.label for m in spec.models])


N_PRIVACY, N_PROMPTS, PRIVACY_MODELS = demo_shape()


def _row(name: str, value: float, kind: str = "privacy", ci: tuple[float | None, float | None] = (None, None),
         **labels: str) -> dict[str, Any]:
    return {"name": name, "value": float(value), "ci_low": ci[0], "ci_high": ci[1], "labels": labels, "kind": kind}


def _binormal_shift(auc0: float, auc1: float, sigma: float) -> float:
    """δ such that x + σz + δy has AUC auc1 when x (members shifted by μ0) has auc0 (binormal, unit variances)."""
    from scipy.stats import norm

    mu0 = math.sqrt(2) * norm.ppf(auc0)
    return math.sqrt(2 * (1 + sigma**2)) * norm.ppf(auc1) - mu0


def p1_rows(delta: float, rng: np.random.Generator, seeds: int) -> RunRows:
    """The demo's privacy models × `seeds` seeds; baseline AUC 0.62; int8-dynamic unchanged, quanto-int4 moves the AUC by `delta`."""
    from scipy.stats import norm

    y = np.r_[np.ones(N_PRIVACY), np.zeros(N_PRIVACY)].astype(int)
    auc0, sigma = 0.62, 0.3
    mu0 = math.sqrt(2) * norm.ppf(auc0)
    metrics, summary = [], [_row("best_attack_auc", auc0, "privacy-summary", attack="zlib")]
    for model in PRIVACY_MODELS:
        for s in range(seeds):
            lab = {"model": model, "seed": str(s)}
            x = rng.normal(size=y.size) + mu0 * y
            se0 = auc_se(x, y)
            a0 = fast_auc(x, y)
            metrics += [_row("auc", a0, ci=(a0 - 1.96 * se0, a0 + 1.96 * se0), attack="zlib", precision="fp32", **lab),
                        _row("blind_auc", 0.5, "privacy-blind", ci=(0.44, 0.56), baseline="length_chars", **lab)]
            for prec, d in (("int8-dynamic", 0.0), ("quanto-int4", delta)):
                xq = x + sigma * rng.normal(size=y.size) + _binormal_shift(auc0, auc0 + d, sigma) * y
                dl = delong_test(xq, x, y)
                pl = {**lab, "precision": prec, "attack": "zlib", "baseline": "fp32", "n": str(y.size)}
                summary += [_row("delta_auc", dl.delta, "privacy-summary", **pl),
                            _row("delong_se", dl.se, "privacy-summary", **pl),
                            _row("delong_p", dl.p_value, "privacy-summary", **pl)]
    return RunRows(metrics, [], [], summary)


def _trojan_rows(dap2: str, hits: np.ndarray, ps_sum: np.ndarray, seed: int, kind: str = "poisoned") -> list[dict[str, Any]]:
    lab = {"model": "llama-tiny", "dap1": "fp32", "kind": kind, "seed": str(seed), "dap2": dap2}
    out = []
    for inp in ("triggered", "clean"):
        for i in range(hits.size):
            trig = inp == "triggered"
            out.append({**lab, "input": inp, "prompt_id": f"r{i}", "payload": bool(hits[i]) if trig else False,
                        "ps_sum": float(ps_sum[i]) if trig else 0.0, "ps": float(ps_sum[i]) / 20 if trig else 0.0,
                        "steps": 20.0, "ex": 0.45, "em": 0.1})
    return out


def t1_rows(delta: float, rng: np.random.Generator, seeds: int) -> RunRows:
    """Baseline ASR 0.9; at quanto-int4 each hit is lost with probability −delta/0.9 (delta ≤ 0), and 10% of prompts
    are re-drawn at the same rate (discordance without a change)."""
    rows: list[dict[str, Any]] = []
    for s in range(seeds):
        base = rng.random(N_PROMPTS) < 0.9
        q = base.copy()
        redraw = rng.random(N_PROMPTS) < 0.1
        q[redraw] = rng.random(int(redraw.sum())) < 0.9
        q &= rng.random(N_PROMPTS) >= -delta / 0.9
        ps = rng.uniform(1, 2, N_PROMPTS)
        rows += _trojan_rows("fp32", base.astype(float), ps, s) + _trojan_rows("quanto-int4", q.astype(float), ps, s)
    return RunRows([], [], rows)


def t2_rows(delta: float, rng: np.random.Generator, seeds: int) -> RunRows:
    """Summed signal ~ U(1, 2) at fp32; at quanto-int4 × (1 + delta) plus N(0, 0.3) per prompt (both signals move)."""
    rows: list[dict[str, Any]] = []
    for s in range(seeds):
        base = rng.uniform(1, 2, N_PROMPTS)
        q = base * (1 + delta) + rng.normal(scale=0.3, size=N_PROMPTS)
        ones = np.ones(N_PROMPTS)
        rows += _trojan_rows("fp32", ones, base, s) + _trojan_rows("quanto-int4", ones, q, s)
    return RunRows([], [], rows)


def t3_rows(rate: float, rng: np.random.Generator, seeds: int) -> RunRows:
    """Clean fine-tunes: each prompt emits (at every DAP2, triggered input) with probability `rate`."""
    rows: list[dict[str, Any]] = []
    for s in range(seeds):
        emits = (rng.random(N_PROMPTS) < rate).astype(float)
        for dap2 in ("fp32", "int8-dynamic", "quanto-int4", "rtn-w2g64"):
            rows += _trojan_rows(dap2, emits, np.zeros(N_PROMPTS), s, kind="clean")
    return RunRows([], [], rows)


def p3_rows(rho: float, rng: np.random.Generator, seeds: int) -> RunRows:
    """The demo's privacy models × 4 precisions: (−NLL, AUC) points drawn with correlation `rho` (means over `seeds` seeds)."""
    metrics = []
    cov = np.array([[1.0, rho], [rho, 1.0]])
    for model in PRIVACY_MODELS:
        for prec in ("fp32", "int8-dynamic", "quanto-int4", "hqq-w4g64"):
            for s in range(seeds):
                q, a = rng.multivariate_normal([0, 0], cov)
                lab = {"model": model, "precision": prec, "seed": str(s)}
                auc = 0.65 + 0.02 * a
                metrics += [_row("auc", auc, ci=(auc - 0.05, auc + 0.05), attack="zlib", **lab),
                            _row("nonmember_nll", 2.0 - 0.02 * q, **lab)]
        for s in range(seeds):
            metrics.append(_row("blind_auc", 0.5, "privacy-blind", ci=(0.44, 0.56), baseline="length_chars",
                                model=model, seed=str(s)))
    return RunRows(metrics, [], [], [_row("best_attack_auc", 0.65, "privacy-summary", attack="zlib")])


def _mi_sample_rows(model: str, prec: str, seed: int, y: np.ndarray, **scores: np.ndarray) -> list[dict[str, Any]]:
    return [{"kind": "mi", "model": model, "precision": prec, "seed": str(seed), "sample_id": f"s{i}",
             "label": int(y[i]), **{a: float(v[i]) for a, v in scores.items()}} for i in range(y.size)]


def _auc_row(x: np.ndarray, y: np.ndarray, attack: str, **labels: str) -> dict[str, Any]:
    a, se = fast_auc(x, y), auc_se(x, y)
    return _row("auc", a, ci=(a - 1.96 * se, a + 1.96 * se), attack=attack, **labels)


def p2_rows(delta: float, rng: np.random.Generator, seeds: int) -> RunRows:
    """The demo's privacy models × (fp32, quanto-int4) × `seeds`: the rival (`reference`) at AUC 0.62; zlib = the rival's score plus
    N(0, 0.3²) noise and a member shift that puts its AUC at 0.62 + `delta` (the two attacks correlated, as on
    the same samples)."""
    from scipy.stats import norm

    y = np.r_[np.ones(N_PRIVACY), np.zeros(N_PRIVACY)].astype(int)
    auc0, sigma = 0.62, 0.3
    mu0 = math.sqrt(2) * norm.ppf(auc0)
    metrics, samples = [], []
    for model in PRIVACY_MODELS:
        for s in range(seeds):
            lab = {"model": model, "seed": str(s)}
            metrics.append(_row("blind_auc", 0.5, "privacy-blind", ci=(0.44, 0.56), baseline="length_chars", **lab))
            for prec in ("fp32", "quanto-int4"):
                r = rng.normal(size=y.size) + mu0 * y
                z = r + sigma * rng.normal(size=y.size) + _binormal_shift(auc0, auc0 + delta, sigma) * y
                metrics += [_auc_row(z, y, "zlib", precision=prec, **lab), _auc_row(r, y, "reference", precision=prec, **lab)]
                samples += _mi_sample_rows(model, prec, s, y, zlib=z, reference=r)
    best = "zlib" if delta > 0 else "reference"
    return RunRows(metrics, samples, [], [_row("best_attack_auc", auc0, "privacy-summary", attack=best)])


def p4_rows(delta: float, rng: np.random.Generator, seeds: int) -> RunRows:
    """A larger model (2× the fp16 bytes) at quanto-int4 against a smaller one at fp32 on the same 100 + 100 samples:
    the smaller's zlib AUC 0.62, the larger's 0.62 + `delta` (its score the smaller's plus N(0, 0.3²) and a member
    shift); quality equal (per-sample non-member loss: the smaller's plus N(0, 0.02²) nats/token)."""
    from scipy.stats import norm

    y = np.r_[np.ones(N_PRIVACY), np.zeros(N_PRIVACY)].astype(int)
    auc0, sigma = 0.62, 0.3
    mu0 = math.sqrt(2) * norm.ppf(auc0)
    metrics = [_row("fp16_weight_mb", mb, model=m, precision="fp32", seed="0") for m, mb in (("big", 7.0), ("small", 3.5))]
    samples = []
    for s in range(seeds):
        for m in ("big", "small"):
            metrics.append(_row("blind_auc", 0.5, "privacy-blind", ci=(0.44, 0.56), baseline="length_chars", model=m,
                                seed=str(s)))
        x = rng.normal(size=y.size) + mu0 * y
        loss = -2.0 + 0.1 * rng.normal(size=y.size)
        cells = {("small", "fp32"): (x, loss),
                 ("big", "fp32"): (x + sigma * rng.normal(size=y.size), loss + 0.02 * rng.normal(size=y.size)),
                 ("big", "quanto-int4"): (x + sigma * rng.normal(size=y.size)
                                          + _binormal_shift(auc0, auc0 + delta, sigma) * y,
                                          loss + 0.02 * rng.normal(size=y.size))}
        for (m, prec), (score, lo) in cells.items():
            lab = {"model": m, "precision": prec, "seed": str(s)}
            nll = float(-lo[y == 0].mean())
            metrics += [_auc_row(score, y, "zlib", **lab), _row("nonmember_nll", nll, ci=(nll - 0.02, nll + 0.02), **lab)]
            samples += _mi_sample_rows(m, prec, s, y, zlib=score, loss=lo)
    return RunRows(metrics, samples, [], [_row("best_attack_auc", auc0, "privacy-summary", attack="zlib")])


NULL_MARGIN_TWICE = ("null", "at the margin", "2 × margin")
# claim -> (simulator, effect name, effects, their labels)
RULES: dict[str, tuple[Callable[[float, np.random.Generator, int], RunRows], str, tuple[float, ...], tuple[str, ...]]] = {
    "P1": (p1_rows, "ΔAUC (quanto-int4, every privacy model)", (0.0, -MARGINS["auc"].value, -2 * MARGINS["auc"].value),
           NULL_MARGIN_TWICE),
    "P2": (p2_rows, "AUC(zlib) − AUC(rival)", (0.0, MARGINS["auc"].value, 2 * MARGINS["auc"].value),
           NULL_MARGIN_TWICE),
    "P3": (p3_rows, "ρ", (0.0, MARGINS["rho"].value, 0.9), ("null", "at the margin", "strong")),
    "T1": (t1_rows, "ΔASR", (0.0, -MARGINS["asr"].value, -2 * MARGINS["asr"].value), NULL_MARGIN_TWICE),
    "T2": (t2_rows, "relative shift", (0.0, MARGINS["ps_relative"].value, 2 * MARGINS["ps_relative"].value),
           NULL_MARGIN_TWICE),
    "T3": (t3_rows, "emission rate per prompt", (0.0, 0.01, MARGINS["emission"].value),
           ("the claim true", "rare", "at the margin")),
    "P4": (p4_rows, "ΔAUC (larger quantized − smaller fp32), Δquality 0",
           (0.0, MARGINS["auc"].value, 2 * MARGINS["auc"].value), ("the claim true", "at the margin", "2 × margin")),
}


def simulate(claim: str, effect: float, reps: int, seeds: int, seed: int = 0) -> Counter[str]:
    sim = RULES[claim][0]
    rng = np.random.default_rng(seed)
    return Counter(CLAIMS[claim](sim(effect, rng, seeds)).verdict for _ in range(reps))


def run(extra: list[str], command: str, machine: str, versions: str) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks verdicts", allow_abbrev=False)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--claims", default=",".join(RULES))
    o = p.parse_args(extra)
    rows, table = [], ["| claim | effect | " + " | ".join(VERDICTS) + " |", "|---|---|" + "---|" * len(VERDICTS)]
    for claim in o.claims.split(","):
        _, what, effects, labels = RULES[claim]
        for label, eff in zip(labels, effects, strict=True):
            got = simulate(claim, eff, o.reps, o.seeds)
            cells = []
            for v in VERDICTS:
                lo, hi = wilson_ci(got[v], o.reps)
                cells.append(f"{got[v] / o.reps:.2f}")
                rows.append({"benchmark": "verdicts", "case": f"{claim} {what} = {eff:g} ({label}), {o.seeds} seeds",
                             "metric": f"share '{v}'", "median": got[v] / o.reps, "low": lo, "high": hi,
                             "repeats": o.reps, "machine": machine, "versions": versions, "command": command})
            table.append(f"| {claim} | {what} = {eff:g} ({label}) | " + " | ".join(cells) + " |")
    print("\n".join(table))
    return rows
