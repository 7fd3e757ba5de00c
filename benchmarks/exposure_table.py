"""The AUC x exposure x precision table of a privacy-study output (`quantrisk privacy ... --out DIR` on an
exposure-regime zoo model), as Markdown and JSON.

`python benchmarks/exposure_table.py DIR [--json OUT.json] [--md OUT.md]`: one row per (attack, precision),
one column per exposure k (members seen k times vs all non-members) and one for all members together; each
cell "AUC [95% CI low, high]" from `DIR/metrics.json` (metrics `auc_by_exposure` and `auc`). Nothing is
recomputed: the numbers are the study's own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def table(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """{"exposures": [k...], "rows": [{"attack", "precision", "all": [v, lo, hi], "k": {k: [v, lo, hi]}}]}."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    ks: set[int] = set()
    for m in metrics:
        lab = m["labels"]
        if m["name"] not in ("auc", "auc_by_exposure") or "attack" not in lab:
            continue
        r = rows.setdefault((lab["attack"], lab["precision"]), {"attack": lab["attack"], "precision": lab["precision"],
                                                                 "all": None, "k": {}})
        cell = [m["value"], m.get("ci_low"), m.get("ci_high")]
        if m["name"] == "auc":
            r["all"] = cell
        else:
            ks.add(int(lab["exposure"]))
            r["k"][str(int(lab["exposure"]))] = cell
    return {"exposures": sorted(ks), "rows": list(rows.values())}


def markdown(t: dict[str, Any]) -> str:
    def fmt(c: list | None) -> str:
        if c is None:
            return "–"
        v, lo, hi = c
        return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{v:.3f}"

    head = "| attack | precision | " + " | ".join(f"k={k}" for k in t["exposures"]) + " | all members |\n"
    head += "|---|---|" + "---|" * (len(t["exposures"]) + 1) + "\n"
    body = "".join(f"| {r['attack']} | {r['precision']} | " + " | ".join(fmt(r["k"].get(str(k))) for k in t["exposures"])
                   + f" | {fmt(r['all'])} |\n" for r in t["rows"])
    return head + body


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dir", type=Path)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None)
    a = p.parse_args()
    t = table(json.loads((a.dir / "metrics.json").read_text(encoding="utf-8"))["metrics"])
    md = markdown(t)
    print(md)
    if a.json:
        a.json.write_text(json.dumps(t, indent=1), encoding="utf-8")
    if a.md:
        a.md.write_text(md, encoding="utf-8")


if __name__ == "__main__":
    main()
