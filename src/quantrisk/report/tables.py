"""Tables of a run, read from the store alone: each a (title, columns, rows) of plain values."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from quantrisk.store import Store

TROJAN_KEYS: tuple[str, ...] = ("model", "kind", "dap1", "dap2", "seed")
TROJAN_RATE_NAMES: tuple[str, ...] = ("asr", "ftr")  # attack success rate, false-trigger rate


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""


def bits_of(precision: str) -> int:
    from quantrisk.precision import parse_precision

    return parse_precision(precision).bits


def fmt(v: Any) -> str:
    """A cell of a table as text: floats with 4 significant digits, None as an em dash."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def privacy_metrics(store: Store) -> list[dict[str, Any]]:
    return store.metrics(kind="privacy")


def privacy_table(store: Store) -> Table | None:
    """Rows (model, precision, seed): AUC [95% CI] per attack, best TPR@1%FPR, CodeBLEU, weight MB."""
    rows = privacy_metrics(store)
    if not rows:
        return None
    attacks = list(dict.fromkeys(r["labels"]["attack"] for r in rows if r["name"] == "auc"))
    keyed: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
    for r in rows:
        lab = r["labels"]
        key = (lab.get("model", ""), lab.get("precision", ""), lab.get("seed", ""))
        name = r["name"] + (f"/{lab['attack']}" if "attack" in lab else "")
        keyed[key][name] = r
    out = Table("Privacy: membership-inference AUC [95% CI] per attack, completion quality, weight memory",
                ["model", "precision", "bits", "seed", *attacks, "TPR@1%FPR (best)", "CodeBLEU", "weight MB"])
    for (model, prec, seed), m in sorted(keyed.items(), key=lambda kv: (kv[0][0], -bits_of(kv[0][1]), kv[0][1], kv[0][2])):
        cells: list[Any] = [model, prec, bits_of(prec), seed]
        for a in attacks:
            r = m.get(f"auc/{a}")
            cells.append(f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r and r["ci_low"] is not None
                         else (f"{r['value']:.3f}" if r else None))
        tprs = [(m[f"tpr@1%fpr/{a}"]["value"], a) for a in attacks if f"tpr@1%fpr/{a}" in m]
        best = max(tprs) if tprs else None
        cells.append(f"{best[0]:.3f} ({best[1]})" if best else None)
        cells.append(m["codebleu"]["value"] if "codebleu" in m else None)
        cells.append(m["weight_mb"]["value"] if "weight_mb" in m else None)
        out.rows.append(cells)
    return out


def trojan_table(store: Store) -> Table | None:
    """Rows (model, kind, dap1, dap2, seed) x every scalar trojan metric (labels beyond those keys are folded in):
    the registered trojan metrics first, in registry order, their column marked ↑ (higher is better) or ↓; then the
    other rows of the cells (timings, memory) in the order they were stored."""
    from quantrisk.trojan.metrics import TROJAN_METRICS

    rows = store.metrics(kind="trojan")
    if not rows:
        return None
    names: list[str] = []
    keyed: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    for r in rows:
        lab = r["labels"]
        extra = {k: v for k, v in lab.items() if k not in TROJAN_KEYS and k != "precision"}
        name = r["name"] + ("" if not extra else "[" + ",".join(f"{k}={v}" for k, v in sorted(extra.items())) + "]")
        if name not in names:
            names.append(name)
        keyed[tuple(str(lab.get(k, "")) for k in TROJAN_KEYS)][name] = r["value"]
    registered = list(TROJAN_METRICS)

    def base(name: str) -> str:
        return name.split("[", 1)[0]

    names.sort(key=lambda n: registered.index(base(n)) if base(n) in registered else len(registered))  # stable
    titles = [n + (" " + ("↑" if TROJAN_METRICS[base(n)].higher_is_better else "↓") if base(n) in TROJAN_METRICS else "")
              for n in names]
    out = Table("Trojan: attack success, false triggers, payload signal and SQL quality per DAP1 x DAP2 "
                "(↑ higher is better, ↓ lower is better)", [*TROJAN_KEYS, *titles])
    for key, m in sorted(keyed.items()):
        out.rows.append([*key, *(m.get(n) for n in names)])
    return out


def cells_table(store: Store) -> Table:
    """One row per cell kind: counts per status and seconds."""
    by: dict[str, dict[str, Any]] = defaultdict(lambda: {"done": 0, "failed": 0, "pending": 0, "running": 0, "seconds": 0.0})
    for c in store.cells():
        d = by[c["kind"]]
        d[c["status"]] += 1
        d["seconds"] += float(c["seconds"] or 0.0)
    return Table("Cells", ["kind", "done", "running", "pending", "failed", "seconds"],
                 [[k, d["done"], d["running"], d["pending"], d["failed"], round(d["seconds"], 1)] for k, d in by.items()])


def failures_table(store: Store) -> Table | None:
    bad = [c for c in store.cells() if c["status"] == "failed"]
    if not bad:
        return None
    return Table("Failed cells", ["cell", "label", "error"], [[c["id"], c["label"], c["error"]] for c in bad])


def memory_rows(store: Store) -> list[tuple[str, str, float, float | None]]:
    """(model, precision, weight MB, fp16 MB) from any study that recorded weight memory (seed-deduplicated)."""
    seen: dict[tuple[str, str], tuple[float, float | None]] = {}
    fp16: dict[tuple[str, str], float] = {}
    for r in store.metrics():
        lab = r["labels"]
        prec = lab.get("precision") or lab.get("dap2")
        if prec is None:
            continue
        key = (lab.get("model", ""), prec)
        if r["name"] == "weight_mb":
            seen.setdefault(key, (r["value"], None))
        elif r["name"] == "fp16_weight_mb":
            fp16.setdefault(key, r["value"])
    return [(m, p, v, fp16.get((m, p))) for (m, p), (v, _) in seen.items()]


def memory_table(store: Store) -> Table | None:
    rows = memory_rows(store)
    if not rows:
        return None
    return Table("Weight memory per precision (MB; fp16 baseline beside it)", ["model", "precision", "bits", "weight MB", "fp16 MB"],
                 [[m, p, bits_of(p), v, f] for m, p, v, f in sorted(rows, key=lambda r: (r[0], -bits_of(r[1]), r[1]))])


def environment_table(store: Store) -> Table | None:
    runs = store.runs()
    if not runs:
        return None
    run = runs[-1]
    env = json.loads(run["environment"])
    rows: list[list[Any]] = [["spec", run["spec_name"]], ["spec sha256", run["spec_sha256"][:16]],
                             ["executor", run["executor"]], ["runs in this store", len(runs)]]
    for k, v in env.items():
        if isinstance(v, dict):
            rows += [[f"{k}.{kk}", vv] for kk, vv in sorted(v.items()) if vv is not None]
        else:
            rows.append([k, v])
    seeds = sorted({str(c["params"].get("seed")) for c in store.cells() if "seed" in c["params"]})
    rows.append(["seeds", ", ".join(seeds)])
    hashes = sorted({f"{c['kind']}: {v}" for c in store.cells() for k, v in c["environment"].items()
                     if k.endswith("sha256") and isinstance(v, str)})
    rows += [["data hash", h[:80]] for h in hashes[:12]]
    return Table("Environment (last run)", ["field", "value"], rows)


def generic_table(store: Store, kind: str, title: str, keys: tuple[str, ...]) -> Table | None:
    """Rows = label tuples `keys`, columns = metric names, for cells of `kind` (pretrain, synthetic, ...)."""
    rows = store.metrics(kind=kind)
    if not rows:
        return None
    names = list(dict.fromkeys(r["name"] for r in rows))
    keyed: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    for r in rows:
        keyed[tuple(str(r["labels"].get(k, "")) for k in keys)][r["name"]] = r["value"]
    return Table(title, [*keys, *names], [[*k, *(m.get(n) for n in names)] for k, m in keyed.items()])
