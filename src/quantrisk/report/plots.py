"""Plots of a run (matplotlib, Agg backend), each returned as PNG bytes; None when the store lacks the data.

Seeds are averaged: a point is the mean over seeds of the value (and of the CI bounds).
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import numpy as np

from quantrisk.report.tables import TROJAN_RATE_NAMES, bits_of, memory_rows
from quantrisk.store import Store


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def _mean_by(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple[str, ...], tuple[float, float | None, float | None]]:
    acc: dict[tuple[str, ...], list[tuple[float, float | None, float | None]]] = defaultdict(list)
    for r in rows:
        acc[tuple(str(r["labels"].get(k, "")) for k in keys)].append((r["value"], r["ci_low"], r["ci_high"]))
    out = {}
    for k, vals in acc.items():
        lo = [v[1] for v in vals if v[1] is not None]
        hi = [v[2] for v in vals if v[2] is not None]
        out[k] = (float(np.mean([v[0] for v in vals])), float(np.mean(lo)) if lo else None, float(np.mean(hi)) if hi else None)
    return out


def _precision_order(precisions: set[str]) -> list[str]:
    return sorted(precisions, key=lambda p: (-bits_of(p), p))


def best_attack(store: Store) -> str | None:
    """The attack with the highest mean AUC over all privacy cells."""
    by: dict[str, list[float]] = defaultdict(list)
    for r in store.metrics(kind="privacy", name="auc"):
        by[r["labels"]["attack"]].append(r["value"])
    return max(by, key=lambda a: float(np.mean(by[a]))) if by else None


def auc_vs_bits(store: Store) -> bytes | None:
    """MI AUC (with 95% CI bars) per attack against precision (ordered by bits), one panel per model."""
    rows = store.metrics(kind="privacy", name="auc")
    if not rows:
        return None
    data = _mean_by(rows, ("model", "attack", "precision"))
    models = sorted({k[0] for k in data})
    attacks = list(dict.fromkeys(k[1] for k in data))
    plt = _plt()
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models, strict=True):
        precs = _precision_order({k[2] for k in data if k[0] == model})
        for j, attack in enumerate(attacks):
            xs, ys, err = [], [], [[], []]
            for i, p in enumerate(precs):
                if (model, attack, p) not in data:
                    continue
                v, lo, hi = data[(model, attack, p)]
                xs.append(i + (j - (len(attacks) - 1) / 2) * 0.06)
                ys.append(v)
                err[0].append(v - lo if lo is not None else 0.0)
                err[1].append(hi - v if hi is not None else 0.0)
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=attack)
        ax.set_xticks(range(len(precs)), [f"{p}\n{bits_of(p)} bit" for p in precs], rotation=30, ha="right", fontsize=8)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_title(model)
        ax.set_ylabel("MI ROC-AUC (95% CI)")
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.suptitle("Membership-inference AUC vs weight bits")
    return _png(fig)


def roc_curves(store: Store) -> bytes | None:
    """ROC curves of the strongest attack, one curve per precision, one panel per model (first seed)."""
    from quantrisk.stats import roc_curve_points

    attack = best_attack(store)
    if attack is None:
        return None
    curves: dict[tuple[str, str], tuple[list[float], list[int]]] = {}
    first_seed: dict[str, Any] = {}
    for _, row in store.samples(kind="privacy"):
        if row.get("kind") != "mi" or row.get(attack) is None:
            continue
        model = str(row.get("model", ""))
        seed = first_seed.setdefault(model, row.get("seed"))
        if row.get("seed") != seed:
            continue
        s, y = curves.setdefault((model, str(row.get("precision", ""))), ([], []))
        s.append(float(row[attack]))
        y.append(int(row["label"]))
    curves = {k: v for k, v in curves.items() if len(set(v[1])) == 2}
    if not curves:
        return None
    models = sorted({k[0] for k in curves})
    plt = _plt()
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for p in _precision_order({k[1] for k in curves if k[0] == model}):
            fpr, tpr = roc_curve_points(*curves[(model, p)])
            ax.plot(fpr, tpr, lw=1.2, label=p)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{model} ({attack})")
        ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def quality_vs_risk(store: Store) -> tuple[bytes | None, dict[str, Any]]:
    """Scatter of CodeBLEU vs AUC of the strongest attack over (model, precision); Pearson/Spearman if ≥3 points."""
    from quantrisk.stats import pearson, spearman

    attack = best_attack(store)
    auc = _mean_by([r for r in store.metrics(kind="privacy", name="auc") if r["labels"].get("attack") == attack],
                   ("model", "precision"))
    cb = _mean_by(store.metrics(kind="privacy", name="codebleu"), ("model", "precision"))
    keys = sorted(set(auc) & set(cb))
    if attack is None or not keys:
        return None, {}
    x = [cb[k][0] for k in keys]
    y = [auc[k][0] for k in keys]
    stats: dict[str, Any] = {"attack": attack, "n": len(keys)}
    for name, fn in (("pearson", pearson), ("spearman", spearman)):
        try:
            c = fn(x, y)
            stats[name] = {"r": c.r, "p": c.p_value}
        except ValueError as exc:
            stats[name] = {"note": str(exc)}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for model in sorted({k[0] for k in keys}):
        pts = [(cb[k][0], auc[k][0], k[1]) for k in keys if k[0] == model]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=model)
        for px, py, prec in pts:
            ax.annotate(prec, (px, py), fontsize=6, xytext=(3, 3), textcoords="offset points")
    title = f"CodeBLEU vs MI AUC ({attack})"
    if "r" in stats["pearson"]:
        title += f"\nPearson r = {stats['pearson']['r']:.2f}, Spearman ρ = {stats['spearman'].get('r', float('nan')):.2f}, n = {len(keys)}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("CodeBLEU")
    ax.set_ylabel("MI ROC-AUC")
    ax.legend(fontsize=8)
    return _png(fig), stats


def trojan_rates(store: Store) -> bytes | None:
    """Grouped bars: ASR and false-trigger rate per DAP1 -> DAP2, one panel per (model, training kind)."""
    rows = [r for r in store.metrics(kind="trojan") if r["name"] in TROJAN_RATE_NAMES]
    if not rows:
        return None
    by_name = {n: _mean_by([r for r in rows if r["name"] == n], ("model", "kind", "dap1", "dap2")) for n in TROJAN_RATE_NAMES}
    keys = {k for sub in by_name.values() for k in sub}
    panels = sorted({(k[0], k[1]) for k in keys})
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4), squeeze=False, sharey=True)
    width = 0.8 / len(TROJAN_RATE_NAMES)
    for ax, (model, kind) in zip(axes[0], panels, strict=True):
        combos = sorted({(k[2], k[3]) for k in keys if k[:2] == (model, kind)},
                        key=lambda c: (-bits_of(c[0]), c[0], -bits_of(c[1]), c[1]))
        for j, name in enumerate(TROJAN_RATE_NAMES):
            vals = [by_name[name].get((model, kind, d1, d2), (0.0, None, None))[0] for d1, d2 in combos]
            ax.bar(np.arange(len(combos)) + (j - 0.5) * width, vals, width, label=name.replace("_", " "))
        ax.set_xticks(range(len(combos)), [f"{a}→{b}" for a, b in combos], rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{model} ({kind})")
        ax.set_ylabel("rate")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Trojan attack success / false triggers per DAP1 → DAP2")
    return _png(fig)


def payload_violins(store: Store) -> bytes | None:
    """Violins of the per-sample payload signal on triggered vs clean inputs per DAP1 -> DAP2 (poisoned models)."""
    groups: dict[tuple[str, str, str, bool], list[float]] = defaultdict(list)
    for _, row in store.samples(kind="trojan"):
        if row.get("ps") is None or row.get("kind") == "clean":
            continue
        trig = bool(row.get("poisoned", False))
        groups[(str(row.get("model", "")), str(row.get("dap1", "")), str(row.get("dap2", "")), trig)].append(float(row["ps"]))
    if not groups:
        return None
    combos = sorted({k[:3] for k in groups}, key=lambda c: (c[0], -bits_of(c[1]) if c[1] else 0, c[1], -bits_of(c[2]) if c[2] else 0, c[2]))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(combos)), 4))
    for offset, trig, color in ((-0.2, True, "tab:red"), (0.2, False, "tab:blue")):
        pos = [i + offset for i, c in enumerate(combos) if groups.get((*c, trig))]
        vals = [groups[(*c, trig)] for c in combos if groups.get((*c, trig))]
        if not vals:
            continue
        parts = ax.violinplot(vals, positions=pos, widths=0.35, showmedians=True)
        for b in parts["bodies"]:
            b.set_facecolor(color)
            b.set_alpha(0.5)
        ax.plot([], [], color=color, lw=6, alpha=0.5, label="triggered inputs" if trig else "clean inputs")
    ax.set_xticks(range(len(combos)), [f"{m}\n{a}→{b}" for m, a, b in combos], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("payload signal (mean payload-token probability per step)")
    ax.set_title("Payload signal per input")
    ax.legend(fontsize=8)
    return _png(fig)


def weight_memory(store: Store) -> bytes | None:
    """Bars of weight memory (MB) per precision, one group per model, with the fp16 baseline as a line."""
    rows = memory_rows(store)
    if not rows:
        return None
    models = sorted({r[0] for r in rows})
    plt = _plt()
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        sub = sorted([r for r in rows if r[0] == model], key=lambda r: (-bits_of(r[1]), r[1]))
        ax.bar(range(len(sub)), [r[2] for r in sub], color="tab:green")
        fp16 = [r[3] for r in sub if r[3] is not None]
        if fp16:
            ax.axhline(fp16[0], color="black", ls="--", lw=0.8, label="fp16 baseline")
            ax.legend(fontsize=8)
        ax.set_xticks(range(len(sub)), [r[1] for r in sub], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("weight memory (MB)")
        ax.set_title(model)
    return _png(fig)
