"""Report section of the `qattack` study: ASR full precision vs quantized per target, the defence curve, scan verdicts.

The study plugs its section into the report from below: `qattack_sections` is registered in the report's section
registry (`@section("qattack", "studies")`), and `quantrisk.studies` imports this module where the application is
assembled. It returns no section when the store has no qattack cells; values are means over the cells' seeds.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from quantrisk.report.plots import png, pyplot
from quantrisk.report.sections import Section, SectionContext, section
from quantrisk.report.tables import Table


def _mean_rows(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple[str, ...], dict[str, float]]:
    acc: dict[tuple[str, ...], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[tuple(str(r["labels"].get(k, "")) for k in keys)][r["name"]].append(r["value"])
    return {k: {n: statistics.fmean(v) for n, v in d.items()} for k, d in acc.items()}


def attack_table(store: Any) -> Any:
    """model x stage x precision: ASR, FTR, JS-K, EM (and codes identical for the repaired model at each target)."""
    rows = [r for r in store.metrics(kind="qattack") if r["name"] in ("asr", "ftr", "js_k", "em", "codes_identical")]
    if not rows:
        return None
    seeds = defaultdict(set)
    for r in rows:
        seeds[r["labels"].get("model")].add(r["labels"].get("seed"))
    by = _mean_rows([r for r in rows if r["name"] != "codes_identical"], ("model", "stage", "target"))
    codes = _mean_rows([r for r in rows if r["name"] == "codes_identical"], ("model", "target"))
    order = {"base": 0, "injected": 1, "repaired": 2}
    out = []
    for (model, stage, target), m in sorted(by.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9),
                                                                         kv[0][2] != "fp32", kv[0][2])):
        same = codes.get((model, target), {}).get("codes_identical") if stage == "repaired" else None
        out.append([model, len(seeds[model]), stage, target, m.get("asr"), m.get("ftr"), m.get("js_k"), m.get("em"),
                    same])
    return Table("Quantization-conditioned backdoor", ["model", "seeds", "stage", "precision", "ASR", "FTR", "JS-K",
                                                       "EM", "codes identical (share of seeds)"], out)


def defence_table(store: Any) -> Any:
    """defence x target x sigma x precision: ASR, FTR, JS-K, EM of the repaired model."""
    rows = [r for r in store.metrics(kind="qattack") if r["name"].startswith("defence_")]
    if not rows:
        return None
    by = _mean_rows(rows, ("model", "defence", "target", "sigma", "precision"))
    out = [[*k, m.get("defence_asr"), m.get("defence_ftr"), m.get("defence_js_k"), m.get("defence_em")]
           for k, m in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1] not in ("none", "noise"),
                                                         float(kv[0][3] or 0), kv[0][4]))]
    return Table("Defences before quantizing (sigma in quantization steps)",
                 ["model", "defence", "target", "sigma", "quantized at", "ASR", "FTR", "JS-K", "EM"], out)


def scan_table(store: Any) -> Any:
    """One row per scanned model: verdict and reasons."""
    rows = [row for _, row in store.samples(kind="qattack") if "verdict" in row]
    if not rows:
        return None
    return Table("Scan verdicts (`quantrisk scan` at the targets)", ["model", "seed", "stage", "verdict", "reasons"],
                 [[r["model"], r["seed"], r["stage"], r["verdict"], r["reasons"]] for r in rows])


def defence_plot(store: Any) -> bytes | None:
    """ASR and clean JS-K at the target vs noise sigma, one line per (model, target)."""
    rows = [r for r in store.metrics(kind="qattack") if r["name"] in ("defence_asr", "defence_js_k")
            and r["labels"].get("defence") in ("none", "noise")]
    if not rows:
        return None
    by = _mean_rows(rows, ("model", "target", "sigma"))
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for model, target in sorted({(k[0], k[1]) for k in by}):
        pts = sorted((float(k[2]), m) for k, m in by.items() if k[:2] == (model, target))
        for ax, name in zip(axes, ("defence_asr", "defence_js_k"), strict=True):
            ax.plot([p[0] for p in pts], [p[1].get(name) for p in pts], marker="o", label=f"{model} @ {target}")
    axes[0].set(xlabel="noise sigma (quantization steps)", ylabel="ASR at the target", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="noise sigma (quantization steps)", ylabel="clean JS-K at the target", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=8)
    return png(fig)


def acceptance_text(store: Any) -> str:
    """Whether each (model, seed) attack met `qattack.acceptance`; for those that did not, what failed. An attack that
    did not work is no evidence about quantization-conditioned backdoors (nor about the defences and scan below)."""
    rows = [row for _, row in store.samples(kind="qattack") if "attack_worked" in row]
    if not rows:
        return ""
    bad = [r for r in rows if not r["attack_worked"]]
    levels = rows[0].get("acceptance") or {}  # as the cell recorded them (qattack.acceptance.levels)
    text = (f"Acceptance (repaired model fp32 ASR <= {levels.get('fp_asr_max', '?')}, ASR >= "
            f"{levels.get('target_asr_min', '?')} at every target, codes identical{_moved(levels)}): met by "
            f"{len(rows) - len(bad)} of {len(rows)} attacks.")
    if bad:
        text += (" Not met, so the rows below for these are no evidence of a quantization-conditioned backdoor: "
                 + "; ".join(f"{r['model']} seed {r['seed']}: {r['attack_reason']}" for r in bad) + ".")
    return text


def _moved(levels: dict[str, Any]) -> str:
    return "" if levels.get("codes_identical_at_gguf", True) else " except at gguf targets (--gguf-accept-moved)"


@section("qattack", "studies")
def qattack_sections(c: SectionContext) -> list[Section]:
    """The qattack report sections: the attack table (with the acceptance), the defences, their curve, the scan."""
    store = c.store
    at = attack_table(store)
    if at is None:
        return []
    secs = [Section("Quantization-conditioned backdoor",
                    "Injected: poisoned fine-tune (trigger -> DROP TABLE). Repaired: PGD inside the intervals of the "
                    "target quantizers. The attack works when the repaired model is clean in fp32 (low ASR) but as "
                    "malicious as the injected one at each target, with identical codes. " + acceptance_text(store),
                    at)]
    dt = defence_table(store)
    if dt is not None:
        secs.append(Section("Defences", "Gaussian noise (sigma x the weight's quantization step) added before "
                            "quantizing, other grids (re-rounding) and a bf16 round trip.", dt))
        img = defence_plot(store)
        if img:
            secs.append(Section("Defence curve", "", None, ("qattack_defence.png", img)))
    st = scan_table(store)
    if st is not None:
        secs.append(Section("Scan verdicts", "", st))
    return secs
