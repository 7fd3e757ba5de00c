"""The AUC x exposure x precision table of a privacy study on an exposure-regime zoo model, as Markdown and JSON.

`python -m quantrisk.report.exposure_table DIR [--json OUT.json] [--md OUT.md]`: DIR is a `quantrisk privacy ... --out DIR`
output (`DIR/metrics.json`) or a `quantrisk run` directory (`DIR/results.sqlite`, every model of the spec). One row
per (model, attack, precision), one column per exposure k (members seen k times vs all non-members) and one for all
members together, each cell "AUC [95% CI low, high]" (metrics `auc_by_exposure` and `auc`); then the paired
comparison with the baseline precision from the privacy-summary cell (`delta_auc` [95% paired bootstrap CI] over all
members, and `delong_p_holm`), where the study computed one. Nothing is recomputed: the numbers are the study's own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from quantrisk.safefs import write_atomic


def table(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """{"exposures": [k...], "rows": [{"model", "attack", "precision", "all": [v, lo, hi], "k": {k: [v, lo, hi]},
    "delta": [v, lo, hi] | None, "baseline": str | None, "p_holm": float | None}]}."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    ks: set[int] = set()
    paired: dict[tuple[str, str, str], dict[str, Any]] = {}
    for m in metrics:
        lab = m["labels"]
        if "attack" not in lab or "precision" not in lab:
            continue
        key = (lab.get("model", ""), lab["attack"], lab["precision"])
        cell = [m["value"], m.get("ci_low"), m.get("ci_high")]
        if m["name"] in ("delta_auc", "delong_p_holm"):
            got = paired.setdefault(key, {"baseline": lab.get("baseline")})
            got["delta" if m["name"] == "delta_auc" else "p_holm"] = cell if m["name"] == "delta_auc" else m["value"]
            continue
        if m["name"] not in ("auc", "auc_by_exposure"):
            continue
        r = rows.setdefault(key, {"model": key[0], "attack": key[1], "precision": key[2], "all": None, "k": {},
                                  "delta": None, "baseline": None, "p_holm": None})
        if m["name"] == "auc":
            r["all"] = cell
        else:
            ks.add(int(lab["exposure"]))
            r["k"][str(int(lab["exposure"]))] = cell
    for key, got in paired.items():
        if key in rows:
            rows[key].update({k: v for k, v in got.items() if v is not None})
    ordered = sorted(rows.values(), key=lambda r: (r["model"], r["attack"]))  # stable: precisions in study order
    return {"exposures": sorted(ks), "rows": ordered}


def markdown(t: dict[str, Any]) -> str:
    def fmt(c: list | None, signed: bool = False) -> str:
        if c is None:
            return "–"
        v, lo, hi = c
        f = "+.3f" if signed else ".3f"
        return f"{v:{f}} [{lo:{f}}, {hi:{f}}]" if lo is not None else f"{v:{f}}"

    models = any(r["model"] for r in t["rows"])
    paired = any(r["delta"] is not None for r in t["rows"])
    cols = (["model"] if models else []) + ["attack", "precision"] + [f"k={k}" for k in t["exposures"]] + ["all members"]
    cols += ["ΔAUC vs baseline (paired)", "DeLong p (Holm)"] if paired else []
    out = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    for r in t["rows"]:
        cells = ([r["model"]] if models else []) + [r["attack"], r["precision"]]
        cells += [fmt(r["k"].get(str(k))) for k in t["exposures"]] + [fmt(r["all"])]
        if paired:
            is_base = r["delta"] is None and r["precision"] in {x["baseline"] for x in t["rows"] if x["baseline"]}
            cells += ["(baseline)" if is_base else fmt(r["delta"], signed=True),
                      "–" if r["p_holm"] is None else f"{r['p_holm']:.3g}"]
        out += "| " + " | ".join(cells) + " |\n"
    return out


def read_metrics(d: Path) -> list[dict[str, Any]]:
    """The metric rows of a privacy output (`metrics.json`) or of a run directory (`results.sqlite`, done cells)."""
    if (d / "metrics.json").is_file():
        return json.loads((d / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    from quantrisk.store import Store

    with Store(d, create=False) as st:
        return [r for r in st.metrics() if r["kind"] in ("privacy", "privacy-summary")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dir", type=Path)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None)
    a = p.parse_args()
    t = table(read_metrics(a.dir))
    md = markdown(t)
    print(md)
    if a.json:
        write_atomic(a.json, json.dumps(t, indent=1))
    if a.md:
        write_atomic(a.md, md)


if __name__ == "__main__":
    main()
