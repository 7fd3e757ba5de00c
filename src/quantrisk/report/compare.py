"""What changed between two runs (two results stores): their settings (the stored specs, key by key), code and
environment, every metric both hold (by kind, name and labels) and the claims' verdicts. Read-only on both
stores; `compare_lines` lays the result out for a terminal or report.md (at most 100 columns)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from quantrisk import formats as F
from quantrisk.report.sections import Section
from quantrisk.report.tables import Table
from quantrisk.store import Store, store_path

# Metrics shown one by one (the others are counted): the studies' headline quantities.
MAIN_METRICS: tuple[str, ...] = ("auc", "delta_auc", "tpr@1%fpr", "codebleu", "asr", "ftr", "ps_mean", "js_k", "ex",
                                 "auc_by_exposure", "member_nll", "nonmember_nll")
SKIP_SETTINGS: tuple[str, ...] = ("cache_dir",)  # where files live, not what was run
MAX_ROWS = 25


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def _spec(store: Store) -> dict[str, Any]:
    runs = store.runs()
    try:
        return json.loads(runs[-1]["spec_json"]) if runs else {}
    except (TypeError, ValueError):
        return {}


def _env(store: Store) -> dict[str, Any]:
    runs = store.runs()
    try:
        return json.loads(runs[-1]["environment"]) if runs else {}
    except (TypeError, ValueError):
        return {}


def _metrics(store: Store) -> dict[tuple[str, str, str], dict[str, Any]]:
    out = {}
    for m in store.metrics():
        labels = json.dumps(m["labels"], sort_keys=True)
        out[(m.get("kind") or "", m["name"], labels)] = m
    return out


def _verdicts(store: Store) -> dict[str, str]:
    from quantrisk.findings import RunRows, findings

    return {f.claim: f.verdict for f in findings(RunRows.from_store(store))}


def compare_stores(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """{settings: [(key, a, b)], environment: [(key, a, b)], metrics: [{kind, name, labels, a, b, delta, ...}],
    n_metrics: {same, changed, only_a, only_b}, verdicts: [(claim, a, b)]} for the runs in `run_a` and `run_b`."""
    with Store(store_path(run_a), create=False) as a, Store(store_path(run_b), create=False) as b:
        sa, sb = _flat(_spec(a)), _flat(_spec(b))
        ea, eb = _flat(_env(a)), _flat(_env(b))
        ma, mb = _metrics(a), _metrics(b)
        va, vb = _verdicts(a), _verdicts(b)
    settings = [(k, sa.get(k), sb.get(k)) for k in sorted(set(sa) | set(sb))
                if sa.get(k) != sb.get(k) and k.split(".")[0] not in SKIP_SETTINGS]
    env = [(k, ea.get(k), eb.get(k)) for k in sorted(set(ea) | set(eb))
           if ea.get(k) != eb.get(k) and k != "spec_sha256"]
    changed, same = [], 0
    for key in sorted(set(ma) & set(mb)):
        x, y = ma[key], mb[key]
        if abs(x["value"] - y["value"]) <= 1e-12 * max(1.0, abs(x["value"])):
            same += 1
            continue
        changed.append({"kind": key[0], "name": key[1], "labels": json.loads(key[2]), "a": x["value"], "b": y["value"],
                        "delta": y["value"] - x["value"], "a_ci": [x["ci_low"], x["ci_high"]],
                        "b_ci": [y["ci_low"], y["ci_high"]]})
    changed.sort(key=lambda m: (m["name"] not in MAIN_METRICS, -abs(m["delta"])))
    verdicts = [(c, va.get(c), vb.get(c)) for c in sorted(set(va) | set(vb))]
    return {"run_a": str(run_a), "run_b": str(run_b), "settings": settings, "environment": env, "metrics": changed,
            "n_metrics": {"same": same, "changed": len(changed), "only_a": len(set(ma) - set(mb)),
                          "only_b": len(set(mb) - set(ma))}, "verdicts": verdicts}


def _v(x: Any) -> str:
    if isinstance(x, float):
        return F.number(x)
    if isinstance(x, (list, dict)):
        return json.dumps(x, default=str)
    return "—" if x is None else str(x)


def _where(m: dict[str, Any]) -> str:
    lab = m["labels"]
    keys = ("model", "precision", "attack", "kind", "dap1", "dap2", "input", "exposure", "seed")
    return " ".join(str(lab[k]) for k in keys if k in lab)


def compare_lines(result: dict[str, Any], width: int = 100) -> list[str]:
    """The comparison as lines of at most `width` columns: settings, code/environment, verdicts, metrics."""
    def wrap(text: str, indent: str = "") -> list[str]:
        return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent + "    ",
                             break_long_words=True, break_on_hyphens=False)

    out = wrap(f"compare A = {result['run_a']} with B = {result['run_b']}")
    out.append(f"settings: {len(result['settings'])} differ" + (":" if result["settings"] else " (same spec)"))
    for k, a, b in result["settings"]:
        out += wrap(f"{k}: {_v(a)} -> {_v(b)}", "  ")
    out.append(f"code and environment: {len(result['environment'])} differ" + (":" if result["environment"] else ""))
    for k, a, b in result["environment"]:
        out += wrap(f"{k}: {_v(a)} -> {_v(b)}", "  ")
    changes = [(c, a, b) for c, a, b in result["verdicts"] if a != b]
    out.append(f"verdicts: {len(changes)} of {len(result['verdicts'])} claims changed" + (":" if changes else ""))
    for c, a, b in changes:
        out += wrap(f"{c}: {a or 'not tested'} -> {b or 'not tested'}", "  ")
    n = result["n_metrics"]
    out += wrap(f"metrics: {F.count(n['changed'])} changed, {F.count(n['same'])} identical, {F.count(n['only_a'])} "
                f"only in A, {F.count(n['only_b'])} only in B")
    def ci(c: list[float | None]) -> str:
        return "" if None in c else f" {F.interval(*c)}".replace(F.NBSP, " ")

    rows = result["metrics"][:MAX_ROWS]
    for m in rows:
        out += wrap(f"{m['name']} {_where(m)}: {_v(m['a'])}{ci(m['a_ci'])} -> {_v(m['b'])}{ci(m['b_ci'])} "
                    f"(Δ {F.delta(m['delta']) if abs(m['delta']) < 100 else F.number(m['delta'])})", "  ")
    if len(result["metrics"]) > MAX_ROWS:
        out.append(f"  ... {len(result['metrics']) - MAX_ROWS} more (--json lists every one)")
    return out


def compare_section(result: dict[str, Any], other: str) -> Section:
    """The report's "Compared with another run" section from
    `compare_stores(other, this run)`: what changed from run A (`other`) to this run (B): settings, code and
    environment, the claims whose verdict changed, and the metrics that changed (main metrics first, largest
    change first, at most `MAX_ROWS`; the counts of the rest)."""
    n = result["n_metrics"]
    changes = [(c, a or "not tested", b or "not tested") for c, a, b in result["verdicts"] if a != b]
    text = (f"A = {other}, B = this run. {len(result['settings'])} setting(s) and {len(result['environment'])} "
            f"code/environment value(s) differ; {len(changes)} of {len(result['verdicts'])} claims changed "
            f"verdict; metrics: {F.count(n['changed'])} changed, {F.count(n['same'])} identical, "
            f"{F.count(n['only_a'])} only in A, {F.count(n['only_b'])} only in B.")
    tables = []
    if result["settings"]:
        tables.append(Table("Settings that differ", ["setting", "A", "B"],
                            [[k, _v(a), _v(b)] for k, a, b in result["settings"]], wrap=True))
    if result["environment"]:
        tables.append(Table("Code and environment that differ", ["key", "A", "B"],
                            [[k, _v(a), _v(b)] for k, a, b in result["environment"]], wrap=True))
    if changes:
        tables.append(Table("Verdicts that changed", ["claim", "A", "B"], [list(c) for c in changes]))
    if result["metrics"]:
        def ci(c: list[float | None]) -> str:
            return "" if None in c else " " + F.interval(*c)

        rows = [[m["name"], _where(m), _v(m["a"]) + ci(m["a_ci"]), _v(m["b"]) + ci(m["b_ci"]),
                 F.delta(m["delta"]) if abs(m["delta"]) < 100 else F.number(m["delta"])]
                for m in result["metrics"][:MAX_ROWS]]
        t = Table("Metrics that changed", ["metric", "where", "A", "B", "Δ (B − A)"], rows, keys=2)
        if len(result["metrics"]) > MAX_ROWS:
            t.notes.append(f"{len(result['metrics']) - MAX_ROWS} more changed metrics not shown "
                           "(`quantrisk compare A B --json` lists every one).")
        tables.append(t)
    return Section("Compared with another run", text, tables=tables)
