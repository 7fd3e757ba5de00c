"""Plots of a run (matplotlib, Agg backend), each returned as PNG bytes; None when the store lacks the data.
One function per plot; a study's report module registers each as a page section with `report.sections.plot`
(a new plot may also draw right inside the registered function, with `pyplot()` and `png()`). Seeds are averaged: a point is the mean over seeds of the value (and of the CI bounds).

House style (use it in new plots): precision on a numeric bits axis (`bits_axis`: log2 scale, ticks at the bit
widths present), back-end as marker shape (`BACKEND_MARKERS`), model as colour, 95% CIs as shaded bands,
a legend instead of point labels, and an empty panel says so in words (`empty_panel`).
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import numpy as np

from quantrisk.precision import backend_markers
from quantrisk.report.tables import TROJAN_RATE_NAMES, bits_of, memory_rows, privacy_summary, trojan_cells
from quantrisk.store import Store


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display), for a plot function's figure."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (110 dpi, no software tag: the bytes depend on the data only); closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    pyplot().close(fig)
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
    """The strongest attack, as the privacy-summary cell stored it (None without one)."""
    summary = privacy_summary(store)
    return summary["attack"] if summary else None


BACKEND_MARKERS: dict[str, str] = backend_markers()  # each back-end's `Quantizer.marker`


def backend_of(precision: str) -> str:
    from quantrisk.precision import parse_precision

    return parse_precision(precision).backend


def marker_of(precision: str) -> str:
    return BACKEND_MARKERS.get(backend_of(precision), "X")


def bits_axis(ax: Any, bits: set[int] | list[int]) -> None:
    """Numeric log2 x axis with a tick at every bit width present (2, 3, 4, 8, 16, 32)."""
    ax.set_xscale("log", base=2)
    ticks = sorted(set(bits))
    ax.set_xticks(ticks, [str(b) for b in ticks])
    ax.minorticks_off()
    ax.set_xlabel("weight bits")
    ax.set_xlim(min(ticks) / 1.3, max(ticks) * 1.3)


def empty_panel(ax: Any, text: str) -> None:
    """Write `text` in the middle of an axis whose data draws nothing (e.g. every bar at 0)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.35",
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})


def _backend_legend(precisions: set[str]) -> list[Any]:
    from matplotlib.lines import Line2D

    backends = sorted({backend_of(p) for p in precisions})
    return [Line2D([], [], ls="", marker=BACKEND_MARKERS.get(b, "X"), color="0.3", label=b) for b in backends]


def _jitter(i: int, n: int) -> float:
    """Multiplicative x offset on the log2 axis so series at the same bits do not hide each other."""
    return float(2 ** ((i - (n - 1) / 2) * 0.06))


def delta_auc_vs_bits(store: Store, paired_rows: list[dict[str, Any]] | None = None) -> bytes | None:
    """ΔAUC (precision − full-precision baseline, same model and attack) against weight bits on a numeric axis,
    one panel per attack, one colour per model, back-end as marker shape; the band is the precision's 95%
    bootstrap CI shifted by the baseline AUC, or the paired CI of Δ where the run has one (`delta_auc` rows of
    `paired_rows`, the run's paired comparisons, else of the store)."""
    rows = store.metrics(kind="privacy", name="auc")
    if not rows:
        return None
    data = _mean_by(rows, ("model", "attack", "precision"))
    paired = _mean_by([m for m in (paired_rows if paired_rows is not None else store.metrics(name="delta_auc"))
                       if m["name"] == "delta_auc"], ("model", "attack", "precision"))
    models = sorted({k[0] for k in data})
    attacks = list(dict.fromkeys(k[1] for k in data))
    plt = pyplot()
    ncol = min(4, len(attacks))
    nrow = -(-len(attacks) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow + 0.6), squeeze=False, sharey=True)
    colors = {m: f"C{i}" for i, m in enumerate(models)}
    allbits: set[int] = set()
    precs_seen: set[str] = set()
    for idx, attack in enumerate(attacks):
        ax = axes[idx // ncol][idx % ncol]
        for mi, model in enumerate(models):
            precs = [p for p in _precision_order({k[2] for k in data if k[:2] == (model, attack)})]
            if not precs:
                continue
            base = data[(model, attack, precs[0])][0]
            pts = []
            for p in sorted(precs, key=lambda p: (bits_of(p), p)):
                v, lo, hi = data[(model, attack, p)]
                if p == precs[0]:  # the baseline itself: Δ = 0 by definition
                    d, dlo, dhi = 0.0, 0.0, 0.0
                elif (model, attack, p) in paired and paired[(model, attack, p)][1] is not None:
                    d, dlo, dhi = paired[(model, attack, p)]
                else:
                    d = v - base
                    dlo = None if lo is None else lo - base
                    dhi = None if hi is None else hi - base
                same = sorted(q for q in precs if bits_of(q) == bits_of(p))  # e.g. int8-dynamic and quanto-int8
                x = bits_of(p) * _jitter(mi, len(models)) * 2 ** ((same.index(p) - (len(same) - 1) / 2) * 0.1)
                pts.append((x, d, dlo, dhi, p))
            xs = [q[0] for q in pts]
            ax.plot(xs, [q[1] for q in pts], color=colors[model], lw=1, alpha=0.8)
            if all(q[2] is not None for q in pts):
                ax.fill_between(xs, [q[2] for q in pts], [q[3] for q in pts], color=colors[model], alpha=0.15, lw=0)
            for x, d, _, _, p in pts:
                ax.plot([x], [d], marker=marker_of(p), color=colors[model], ms=6, ls="")
                allbits.add(bits_of(p))
                precs_seen.add(p)
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_title(attack, fontsize=10)
        if idx % ncol == 0:
            ax.set_ylabel("ΔAUC vs baseline")
    for idx in range(len(attacks), nrow * ncol):
        axes[idx // ncol][idx % ncol].set_visible(False)
    for idx in range(len(attacks)):
        bits_axis(axes[idx // ncol][idx % ncol], allbits)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[m], lw=2, label=m) for m in models] + _backend_legend(precs_seen)
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Membership-inference AUC change vs weight bits (band: 95% CI)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return png(fig)


def tpr_resolution_text(n_nonmembers: int | None) -> str:
    """What the non-member count resolves: `With 60 non-members the smallest FPR above 0 is 1/60 = 0.017: ...`."""
    if not n_nonmembers:
        return ""
    from quantrisk import formats as F
    from quantrisk.report.tables import TPR_POINTS, resolved_tpr_points

    ok = resolved_tpr_points(n_nonmembers)
    left = [c for t, _, c in TPR_POINTS if t not in {x[0] for x in ok}]
    text = (f"With {F.count(n_nonmembers)} non-members the smallest FPR above 0 is 1/{F.count(n_nonmembers)} = "
            f"{F.prob(1 / n_nonmembers)}")
    return text + (f"; {' and '.join(left)} would be TPR at zero false positives and are not shown." if left else ".")


def tpr_vs_bits(store: Store, n_nonmembers: int | None = None) -> bytes | None:
    """TPR at the low FPRs that `n_nonmembers` resolves (1%, 0.1%; `tables.resolved_tpr_points`) of the strongest
    attack against weight bits, one colour per model, back-end as marker, band = the TPR's 95% bootstrap CI where
    stored; dotted lines are the FPR itself (what a random guess reaches). None when no FPR is resolved."""
    from quantrisk.report.tables import resolved_tpr_points

    points = [(t, f) for t, f, _ in resolved_tpr_points(n_nonmembers)]
    if not points:
        return None
    attack = best_attack(store)
    series = {}
    for name, _ in points:
        rows = [r for r in store.metrics(kind="privacy", name=name) if r["labels"].get("attack") == attack]
        series[name] = _mean_by(rows, ("model", "precision"))
    if attack is None or not any(series.values()):
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(points), figsize=(4.75 * len(points), 3.6), squeeze=False, sharey=False)
    models = sorted({k[0] for sub in series.values() for k in sub})
    colors = {m: f"C{i}" for i, m in enumerate(models)}
    allbits: set[int] = set()
    precs_seen: set[str] = set()
    for ax, (name, fpr) in zip(axes[0], points, strict=True):
        data = series[name]
        for mi, model in enumerate(models):
            pts = sorted(((bits_of(p), v[0], p) for (m, p), v in data.items() if m == model), key=lambda t: (t[0], t[2]))
            if not pts:
                continue
            xs = [b * _jitter(mi, len(models)) for b, _, _ in pts]
            ax.plot(xs, [v for _, v, _ in pts], color=colors[model], lw=1)
            cis = [data[(model, p)][1:] for _, _, p in pts]
            if all(lo is not None and hi is not None for lo, hi in cis):  # bootstrap CI of the TPR, where stored
                ax.fill_between(xs, [c[0] for c in cis], [c[1] for c in cis], color=colors[model], alpha=0.15, lw=0)
            for x, (b, v, p) in zip(xs, pts, strict=True):
                ax.plot([x], [v], marker=marker_of(p), color=colors[model], ms=6, ls="")
                allbits.add(b)
                precs_seen.add(p)
        ax.axhline(fpr, color="grey", lw=0.8, ls=":")
        if data and all(v[0] == 0 for v in data.values()):
            empty_panel(ax, f"all 0 ({len(data)} points)")
        ax.set_title(f"TPR at {fpr:.1%} FPR ({attack})", fontsize=10)
        ax.set_ylabel("true positive rate")
        ax.set_ylim(bottom=0)
        if allbits:
            bits_axis(ax, allbits)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[m], lw=2, label=m) for m in models] + _backend_legend(precs_seen)
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.04))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return png(fig)


def roc_curves(store: Store) -> bytes | None:
    """ROC curves of the strongest attack, one curve per precision, one panel per model (first seed)."""
    from quantrisk.stats import fast_auc, roc_curve_points

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
    plt = pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 4.4), squeeze=False)
    styles = ["-", "--", "-.", ":"]
    for ax, model in zip(axes[0], models, strict=True):
        n_non = min(len(y) - sum(y) for k, (_, y) in curves.items() if k[0] == model)
        floor = 1.0 / max(n_non, 1)
        for i, p in enumerate(_precision_order({k[1] for k in curves if k[0] == model})):
            scores, labels = curves[(model, p)]
            fpr, tpr = roc_curve_points(scores, labels)
            auc = fast_auc(np.asarray(scores, dtype=float), np.asarray(labels, dtype=int))
            ax.plot(np.maximum(fpr, floor / 2), np.maximum(tpr, floor / 2), lw=1.3, ls=styles[i % len(styles)],
                    drawstyle="steps-post", label=f"{p} (AUC {auc:.3f})")
        grid = np.logspace(np.log10(floor / 2), 0, 50)
        ax.plot(grid, grid, color="grey", lw=0.8, ls=":", label="chance (TPR = FPR)")
        ax.axvline(floor, color="0.6", lw=0.6, ls="--")
        ax.text(floor * 1.08, floor, f"FPR resolution 1/{n_non}", fontsize=7, color="0.4", va="bottom", rotation=90)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor / 2, 1.0)
        ax.set_ylim(floor / 2, 1.05)
        ax.set_xlabel("false positive rate (log)")
        ax.set_ylabel("true positive rate (log)")
        ax.set_title(f"{model} ({attack})", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return png(fig)


def auc_vs_exposure(store: Store) -> bytes | None:
    """MI AUC of the members seen k times vs all non-members (metric `auc_by_exposure`, exposure-regime zoo
    models) against k on a log2 axis: one line per precision with its 95% bootstrap CI as a band, one panel
    per (model, attack); the dotted line is chance (0.5). None when no cell has per-exposure AUCs."""
    rows = store.metrics(kind="privacy", name="auc_by_exposure")
    if not rows:
        return None
    data = _mean_by(rows, ("model", "attack", "precision", "exposure"))
    panels = sorted({(k[0], k[1]) for k in data})
    ncol = min(4, len(panels))
    nrow = -(-len(panels) // ncol)
    plt = pyplot()
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.9 * ncol, 3.1 * nrow + 0.8), squeeze=False, sharey=True,
                             sharex=True)
    precs_all = _precision_order({k[2] for k in data})
    styles = ["-", "--", "-.", ":"]
    look = {p: (f"C{i % 10}", styles[i % len(styles)], marker_of(p)) for i, p in enumerate(precs_all)}
    for ax, (model, attack) in zip(axes.flat, panels, strict=False):
        precs = [p for p in precs_all if (model, attack, p) in {k[:3] for k in data}]
        for i, p in enumerate(precs):
            ks = sorted(int(k[3]) for k in data if k[:3] == (model, attack, p))
            vals = [data[(model, attack, p, str(k))] for k in ks]
            xs = [k * _jitter(i, len(precs)) for k in ks]  # coinciding lines side by side, not on top of each other
            color, ls, mk = look[p]
            ax.plot(xs, [v[0] for v in vals], marker=mk, ls=ls, color=color, lw=1.2, ms=4)
            if all(v[1] is not None and v[2] is not None for v in vals):
                ax.fill_between(xs, [v[1] for v in vals], [v[2] for v in vals], color=color, alpha=0.08, lw=0)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ticks = sorted({int(k[3]) for k in data if k[:2] == (model, attack)})
        ax.set_xticks(ticks, [str(k) for k in ticks])  # a tick at every exposure present (house style)
        ax.minorticks_off()
        ax.set_title(f"{model} · {attack}", fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("AUC (k-times members)", fontsize=9)
    for ax in axes[-1, :]:
        ax.set_xlabel("exposures k", fontsize=9)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=look[p][0], ls=look[p][1], marker=look[p][2], label=p) for p in precs_all]
    handles.append(Line2D([], [], color="grey", ls=":", label="chance (0.5)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=8, frameon=False)
    fig.suptitle("MI AUC of members seen k times vs all non-members (band: 95% bootstrap CI)", fontsize=11)
    fig.tight_layout(rect=(0, 0.9 / (3.1 * nrow + 0.8), 1, 1 - 0.35 / (3.1 * nrow + 0.8)))
    return png(fig)


def completion_counts(store: Store) -> list[int]:
    """The distinct numbers of completions behind each CodeBLEU point (completion samples per privacy cell)."""
    n: dict[str, int] = defaultdict(int)
    for cell_id, row in store.samples(kind="privacy"):
        if row.get("kind") == "completion":
            n[cell_id] += 1
    return sorted(set(n.values()))


def quality_vs_risk(store: Store) -> tuple[bytes | None, dict[str, Any]]:
    """Scatter of CodeBLEU vs AUC of the strongest attack over (model, precision) (points: means over seeds), titled with
    the Pearson/Spearman correlation the privacy-summary cell stored (exact permutation p at n ≤ 10; with several
    models, within-model); returns (png, those numbers)."""
    summary = privacy_summary(store)
    attack = summary["attack"] if summary else None
    auc = _mean_by([r for r in store.metrics(kind="privacy", name="auc") if r["labels"].get("attack") == attack],
                   ("model", "precision"))
    cb = _mean_by(store.metrics(kind="privacy", name="codebleu"), ("model", "precision"))
    keys = sorted(set(auc) & set(cb))
    if summary is None or not keys:
        return None, {}
    stats: dict[str, Any] = {**summary, "n": summary["n"] or len(keys)}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    models = sorted({k[0] for k in keys})
    precs = _precision_order({k[1] for k in keys})
    pcolor = {p: f"C{i % 10}" for i, p in enumerate(precs)}
    mmarker = {m: "osD^vP*X"[i % 8] for i, m in enumerate(models)}
    for k in keys:  # a legend instead of point labels (labels of near points overlap); earlier precisions drawn
        rank = precs.index(k[1])  # larger and below, so coinciding points show as rings
        lo, hi = auc[k][1], auc[k][2]
        if lo is not None and hi is not None:  # the AUC's 95% bootstrap CI
            ax.errorbar([cb[k][0]], [auc[k][0]], yerr=[[auc[k][0] - lo], [hi - auc[k][0]]], color=pcolor[k[1]],
                        lw=0.8, capsize=3, zorder=1)
        ax.scatter([cb[k][0]], [auc[k][0]], color=pcolor[k[1]], marker=mmarker[k[0]], s=40 + 45 * (len(precs) - 1 - rank),
                   edgecolor="black", lw=0.4, zorder=2 + rank)
    xs = [cb[k][0] for k in keys]
    mid, span = (max(xs) + min(xs)) / 2, max(max(xs) - min(xs), 0.05)  # an axis a few 1e-4 wide reads as a trend
    ax.set_xlim(max(0.0, mid - 0.6 * span), mid + 0.6 * span)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=pcolor[p], label=p) for p in precs]
    if len(models) > 1:
        handles += [Line2D([], [], ls="", marker=mmarker[m], color="0.4", label=m) for m in models]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    title = f"CodeBLEU vs MI AUC ({attack})"
    if "r" in stats["pearson"]:
        title += f"\nPearson r = {stats['pearson']['r']:.2f}, Spearman ρ = {stats['spearman'].get('r', float('nan')):.2f}, n = {len(keys)}"
    ax.set_title(title, fontsize=9)
    n_comp = completion_counts(store)
    ax.set_xlabel("CodeBLEU" + (f" (n = {'/'.join(map(str, n_comp))} completions per point; no CI stored)"
                                if n_comp else " (no CI stored)"))
    ax.set_ylabel("MI ROC-AUC (95% bootstrap CI)")
    return png(fig), stats


def trojan_rates(store: Store) -> bytes | None:
    """Grouped bars: ASR and false-trigger rate with 95% Wilson CIs per DAP1 → DAP2, one panel per (model, training
    kind); a panel whose bars are all 0 says so (with n) instead of showing an empty frame."""
    cells = trojan_cells(store)
    if not any(n in m for m in cells.values() for n in TROJAN_RATE_NAMES):
        return None
    panels = sorted({(k[0], k[1]) for k in cells}, key=lambda p: (p[0], p[1] != "poisoned", p[1]))
    plt = pyplot()
    per_panel = max(4.5, 0.8 * max(len({k[2:4] for k in cells if k[:2] == p}) for p in panels) + 2.0)
    fig, axes = plt.subplots(1, len(panels), figsize=(per_panel * len(panels), 3.8), squeeze=False, sharey=True)
    width = 0.8 / len(TROJAN_RATE_NAMES)
    labels = {"asr": "ASR (triggered inputs)", "ftr": "false triggers (clean inputs)"}
    for ax, (model, kind) in zip(axes[0], panels, strict=True):
        combos = sorted({(k[2], k[3]) for k in cells if k[:2] == (model, kind)},
                        key=lambda c: (-bits_of(c[0]), c[0], -bits_of(c[1]), c[1]))
        top, ns = 0.0, set()
        for j, name in enumerate(TROJAN_RATE_NAMES):
            inputs = "triggered" if name == "asr" else "clean"
            vals, err = [], [[], []]
            for d1, d2 in combos:
                rs = [m for k, m in cells.items() if k[:4] == (model, kind, d1, d2) and name in m]
                v = float(np.mean([m[name]["value"] for m in rs])) if rs else 0.0
                lo = [m[name]["ci_low"] for m in rs if m[name]["ci_low"] is not None]
                hi = [m[name]["ci_high"] for m in rs if m[name]["ci_high"] is not None]
                ns.update(int(m[f"n_inputs[input={inputs}]"]["value"]) for m in rs if f"n_inputs[input={inputs}]" in m)
                vals.append(v)
                err[0].append(v - float(np.mean(lo)) if lo else 0.0)
                err[1].append(float(np.mean(hi)) - v if hi else 0.0)
                top = max(top, v)
            xs = np.arange(len(combos)) + (j - 0.5) * width
            ax.bar(xs, vals, width, yerr=err, capsize=3, label=labels[name], color=("tab:red", "tab:blue")[j],
                   alpha=0.8, error_kw={"lw": 0.8})
            for x, v, up in zip(xs, vals, err[1], strict=True):  # a bar at 0 draws nothing: say it, above its CI
                if v == 0.0:
                    ax.text(x, up + 0.02, "0", ha="center", va="bottom", fontsize=7, color=("tab:red", "tab:blue")[j])
        if top == 0.0:
            empty_panel(ax, "all 0" + (f" (n = {', '.join(map(str, sorted(ns)))} per bar)" if ns else ""))
        ax.set_xticks(range(len(combos)), [f"{a}→{b}" for a, b in combos], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{model} ({kind} fine-tune)", fontsize=10)
        ax.set_ylabel("rate (95% Wilson CI)")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Trojan attack success / false triggers per DAP1 → DAP2", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    return png(fig)


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
    plt = pyplot()
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
        for key in ("cmedians", "cbars", "cmins", "cmaxes"):
            if key in parts:
                parts[key].set_color(color)
        ax.plot([], [], color=color, lw=6, alpha=0.5, label="triggered inputs" if trig else "clean inputs")
    ax.set_xticks(range(len(combos)), [f"{m}\n{a}→{b}" for m, a, b in combos], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("payload signal (mean payload-token probability per step)")
    ax.set_title("Payload signal per input")
    ax.legend(fontsize=8)
    return png(fig)


def weight_memory(store: Store) -> bytes | None:
    """Bars of weight memory (MB) per precision, held in memory beside the packed size a real format would need,
    one panel per model, the fp16 baseline as a dashed line."""
    rows = memory_rows(store)
    if not rows:
        return None
    models = sorted({r.model for r in rows})
    plt = pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        sub = sorted([r for r in rows if r.model == model], key=lambda r: (-bits_of(r.precision), r.precision))
        x = np.arange(len(sub))
        ax.bar(x - 0.2, [r.held for r in sub], 0.4, color="tab:green", label="held in memory")
        ax.bar(x + 0.2, [r.packed or 0.0 for r in sub], 0.4, color="tab:olive", label="packed format")
        fp16 = [r.fp16 for r in sub if r.fp16 is not None]
        if fp16:
            ax.axhline(fp16[0], color="black", ls="--", lw=0.8, label="fp16 baseline")
        ax.legend(fontsize=7)
        ax.set_xticks(range(len(sub)), [r.precision for r in sub], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("weight memory (MB)")
        ax.set_title(model, fontsize=10)
    fig.tight_layout()
    return png(fig)
