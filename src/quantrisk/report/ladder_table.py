"""Issue 13's size ladder in one table: for each size's output folder of `benchmarks/gpu/issue13.sh` (commit 925abd2) (pretrain_base.json +
privacy_base/metrics.json), per precision: weight MB (held in memory / packed at the nominal bits), non-member NLL and the all-members AUC of each attack; then
every "larger model quantized vs smaller model at full precision" pair (larger ≥ 1.5x the parameters, as the P4
finding pairs them), with the differences in non-member NLL (quality; lower is better) and LOSS AUC (risk).
NLL is nats per token, so it is compared only between sizes that share a tokenizer (same vocabulary size).

  python -m quantrisk.report.ladder_table tiny=DIR small=DIR base=DIR large=DIR [--full bf16]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def load(folder: Path) -> dict[str, Any]:
    """{"params", "vocab", "rows": {precision: {"mb", "nll", attack: auc}}} from one issue13.sh output folder."""
    pre = json.loads((folder / "pretrain_base.json").read_text())
    metrics = json.loads((folder / "privacy_base" / "metrics.json").read_text())["metrics"]
    rows: dict[str, dict[str, float]] = {}
    for m in metrics:
        labels = m.get("labels", {})
        prec = labels.get("precision")
        if prec is None or labels.get("seed", "0") != "0":
            continue
        row = rows.setdefault(prec, {})
        if m["name"] == "nonmember_nll":
            row["nll"] = m["value"]
        elif m["name"] == "weight_mb":
            row["mb"] = m["value"]
        elif m["name"] == "nominal_weight_mb":
            row["packed"] = m["value"]
        elif m["name"] == "auc" and "attack" in labels:
            row[labels["attack"]] = m["value"]
    return {"params": pre["n_params"], "vocab": pre["settings"]["vocab_size"], "rows": rows}


def table(ladder: dict[str, dict[str, Any]], full: str) -> str:
    attacks = sorted({a for s in ladder.values() for r in s["rows"].values() for a in r if a not in ("nll", "mb", "packed")})
    out = ["| size | parameters | precision | weight MB held / packed | non-member NLL | " + " | ".join(f"{a} AUC" for a in attacks) + " |",
           "|" + "---|" * (5 + len(attacks))]
    for size, s in ladder.items():
        for prec, r in s["rows"].items():
            aucs = " | ".join(f"{r[a]:.3f}" if a in r else "–" for a in attacks)
            out.append(f"| {size} | {s['params'] / 1e6:.1f}M | {prec} | {r.get('mb', float('nan')):.1f} / "
                       f"{r.get('packed', float('nan')):.1f} | "
                       f"{r.get('nll', float('nan')):.3f} | {aucs} |")
    out += ["", "| larger @ precision | smaller @ " + full + " | Δ non-member NLL | Δ LOSS AUC |", "|---|---|---|---|"]
    for big, b in ladder.items():
        for small, s in ladder.items():
            if b["params"] < 1.5 * s["params"] or full not in s["rows"]:
                continue
            for prec, r in b["rows"].items():
                if prec == full:
                    continue
                dn = (f"{r['nll'] - s['rows'][full]['nll']:+.3f}" if b["vocab"] == s["vocab"]
                      else "– (different tokenizers)")
                da = r.get("loss", float("nan")) - s["rows"][full].get("loss", float("nan"))
                out.append(f"| {big} @ {prec} | {small} @ {full} | {dn} | {da:+.3f} |")
    return "\n".join(out)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sizes", nargs="+", help="SIZE=FOLDER (an issue13.sh output folder), smallest first")
    p.add_argument("--full", default="bf16", help="the full-precision baseline's precision string")
    o = p.parse_args()
    ladder = {}
    for item in o.sizes:
        name, _, folder = item.partition("=")
        ladder[name] = load(Path(folder))
    print(table(ladder, o.full))
