"""Which verdicts change with issue 15's definitions, on one run's store.

    PYTHONPATH=src python3 benchmarks/issue15_compare.py RUN [--trojan-data builtin --n-rows 600 --n-test 48]

For each claim whose test or definition changed, the verdict under the earlier reading and under the new one:
- P1: earlier, per-precision bootstrap CIs only: "lower" when the quantized AUC's CI lies wholly below the
  full-precision CI; now the paired ΔAUC with DeLong + Holm (quantrisk.findings).
- P3: earlier, Spearman over all (model, precision) points pooled across models, scipy's asymptotic p, CodeBLEU with
  the prompt; now Spearman within model (exact permutation p), CodeBLEU of the continuation.
- T2: earlier the per-step mean payload signal; now the study's summed signal (same Wilcoxon test + Holm).
- EX: earlier one database, two empty results = a match; now 3 databases, gold empty on all = left out.
Prints a Markdown table. Reads the store only, except EX, which re-runs the stored SQL outputs in SQLite.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

import numpy as np

from quantrisk.findings import (
    ALPHA,
    CLAIMS,
    HOLDS,
    INCONCLUSIVE,
    NOT,
    RunRows,
    _bits,
    best_attack,
)
from quantrisk.findings_trojan import t2_payload_signal_shifts
from quantrisk.stats import spearman
from quantrisk.store import Store, store_path


def p1_overlap(rows: RunRows) -> tuple[str, str]:
    attack = best_attack(rows)
    auc = [m for m in rows.named("auc", "privacy") if m["labels"].get("attack") == attack]
    by = defaultdict(dict)
    for m in auc:
        by[m["labels"]["model"]][m["labels"]["precision"]] = m
    lower, higher = [], []
    for model, precs in by.items():
        base = precs.get("fp32") or precs.get("bf16")
        if base is None:
            continue
        for p, m in precs.items():
            if _bits(p) >= 16:
                continue
            if m["ci_high"] < base["ci_low"]:
                lower.append(f"{p} ({model})")
            elif m["ci_low"] > base["ci_high"]:
                higher.append(f"{p} ({model})")
    if lower and not higher:
        return HOLDS, f"{attack}: CI wholly below fp32 at {', '.join(lower)}"
    if higher:
        return NOT, f"{attack}: CI wholly above fp32 at {', '.join(higher)}"
    return INCONCLUSIVE, f"{attack}: every quantized CI overlaps the fp32 CI"


def p3_pooled(rows: RunRows) -> tuple[str, str]:
    attack = best_attack(rows)
    key = lambda m: (m["labels"]["model"], m["labels"]["precision"])  # noqa: E731
    auc = {key(m): m["value"] for m in rows.named("auc", "privacy") if m["labels"].get("attack") == attack}
    cb = {key(m): m["value"] for m in rows.named("codebleu_with_prompt", "privacy")}
    ks = sorted(set(auc) & set(cb))
    if len(ks) < 3:
        return INCONCLUSIVE, f"{len(ks)} points"
    c = spearman([cb[k] for k in ks], [auc[k] for k in ks], exact=False)
    verdict = (HOLDS if c.r > 0 else NOT) if c.p_value <= ALPHA else INCONCLUSIVE
    return verdict, f"pooled ρ = {c.r:.3f}, asymptotic p = {c.p_value:.3g} (n = {c.n}, CodeBLEU with prompt)"


def t2_mean(rows: RunRows) -> tuple[str, str]:
    swapped = [{**r, "ps_sum": r.get("ps", 0.0)} for r in rows.trojan]
    f = t2_payload_signal_shifts(RunRows(rows.metrics, rows.privacy, swapped))
    return f.verdict, f"per-step mean PS: {f.why}"


def ex_rules(rows: RunRows, data: str, n_rows: int, n_test: int) -> tuple[str, str, str, str]:
    """EX of the poisoned fp32→fp32 cell's clean inputs under the old and the new rule."""
    from quantrisk.trojan.splits import trojan_splits
    from quantrisk.trojan.sqlexec import build_database, execution_match, run_query, same_results

    old_hits: list[bool] = []
    new_hits: list[bool] = []
    empty_pairs = 0
    for seed in sorted({str(r.get("seed")) for r in rows.trojan}):
        _, test = trojan_splits(data, n_rows, n_test, None, int(seed))
        ctx = {r.id: r for r in test}
        for r in rows.trojan:
            if str(r.get("seed")) != seed or r.get("input") != "clean" or r.get("dap2") not in ("fp32", "bf16") \
                    or r.get("kind") != "poisoned" or r["prompt_id"] not in ctx:
                continue
            row = ctx[r["prompt_id"]]
            conn = build_database(row.context, seed=0, gold=row.answer)
            g, p = run_query(conn, row.answer), run_query(conn, r["output"])
            conn.close()
            if g.ok:
                old = p.ok and same_results(g.rows, p.rows, ordered="order by" in row.answer.lower())
                old_hits.append(bool(old))
                empty_pairs += bool(old and not g.rows)
            m = execution_match(row.context, row.answer, r["output"])
            if m.match is not None:
                new_hits.append(bool(m.match))
    old = f"{np.mean(old_hits):.3f} (n = {len(old_hits)}; {empty_pairs} empty = empty matches)" if old_hits else "n/a"
    new = f"{np.mean(new_hits):.3f} (n = {len(new_hits)})" if new_hits else "n/a"
    return "EX", "one database, empty = empty counts", old, new


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--trojan-data", default="builtin")
    ap.add_argument("--n-rows", type=int, default=600)
    ap.add_argument("--n-test", type=int, default=48)
    a = ap.parse_args()
    with Store(store_path(a.run), create=False) as st:
        rows = RunRows.from_store(st)
    new = {c: CLAIMS[c](rows) for c in ("P1", "P3", "T2")}
    old: dict[str, Any] = {"P1": p1_overlap(rows), "P3": p3_pooled(rows), "T2": t2_mean(rows)}
    print("| claim | earlier reading | verdict | now | verdict | changed |")
    print("|---|---|---|---|---|---|")
    for c in ("P1", "P3", "T2"):
        (ov, owhy), f = old[c], new[c]
        print(f"| {c} | {owhy} | {ov} | {f.why} | {f.verdict} | {'yes' if ov != f.verdict else 'no'} |")
    if rows.trojan:
        name, rule, o, n = ex_rules(rows, a.trojan_data, a.n_rows, a.n_test)
        print(f"| {name} (poisoned adapter, clean inputs, full-precision DAP2) | {rule} | {o} | 3 databases, "
              f"gold empty on all left out | {n} | {'yes' if o.split()[0] != n.split()[0] else 'no'} |")
    cb = defaultdict(dict)
    for name in ("codebleu", "codebleu_with_prompt"):
        for m in rows.named(name, "privacy"):
            cb[(m["labels"]["model"], m["labels"]["precision"])][name] = m["value"]
    print("\n| model | precision | CodeBLEU with prompt (earlier) | CodeBLEU of the continuation (now) |")
    print("|---|---|---|---|")
    for (model, prec), v in sorted(cb.items(), key=lambda kv: (kv[0][0], -_bits(kv[0][1]))):
        print(f"| {model} | {prec} | {v.get('codebleu_with_prompt', float('nan')):.3f} | {v.get('codebleu', float('nan')):.3f} |")


if __name__ == "__main__":
    main()
