"""The report's setup box: what was run, on what, how big, with which settings, when, for how long, by which
code, where — read from the store alone (the runs table's spec and environment, the cells' parameters and
recorded environments). Every table column that would be the same on every row (seed, DAP1, ...) is stated here
instead."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

from quantrisk import formats as F
from quantrisk.report.tables import Table, bits_of
from quantrisk.store import Store

# Study settings shown in the setup box (others are in the stored spec); order kept.
PRIVACY_SETTINGS: tuple[str, ...] = ("attacks", "n", "completion_n", "max_new_tokens", "reference", "n_resamples",
                                     "max_length", "data", "nonmembers")
TROJAN_SETTINGS: tuple[str, ...] = ("data", "n_rows", "n_test", "poison_rate", "trigger", "payload", "position",
                                    "steps", "batch_size", "grad_accum", "lr", "lora_r", "lora_alpha", "lora_dropout",
                                    "target", "max_new_tokens", "clean_ablation")


def _utc(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(float(ts), tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def last_spec(store: Store) -> dict[str, Any]:
    """The spec of the last invocation (as stored), {} when the store has none or it is not JSON."""
    runs = store.runs()
    if not runs:
        return {}
    try:
        spec = json.loads(runs[-1]["spec_json"])
    except (TypeError, ValueError):
        return {}
    return spec if isinstance(spec, dict) else {}


def model_sizes(store: Store) -> dict[str, int]:
    """Model label -> parameter count, from the privacy/trojan cells' load records or the pretrain metrics."""
    out: dict[str, int] = {}
    for r in store.metrics(kind="pretrain", name="n_params"):
        if r["labels"].get("role", "target") == "target":
            out.setdefault(r["labels"].get("model", ""), int(r["value"]))
    for c in store.cells():
        if c["status"] != "done" or c["kind"] not in ("privacy", "trojan"):
            continue
        load = (c["environment"] or {}).get("load") or {}
        label = c["params"].get("label")
        if label and isinstance(load.get("n_params"), int) and label not in out:
            out[label] = load["n_params"]
    return out


def wall_seconds_of(runs: list[dict[str, Any]]) -> float | None:
    """Wall time of the invocations `runs` together (each from start to finish; an unfinished one not counted)."""
    spans = [r["finished"] - r["started"] for r in runs if r["finished"] is not None]
    return sum(spans) if spans else None


def wall_seconds(store: Store) -> float | None:
    """Wall time of all the store's invocations (`wall_seconds_of`)."""
    return wall_seconds_of(store.runs())


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v)
    if isinstance(v, float):
        return F.number(v)
    if isinstance(v, str) and (" " in v or ";" in v):
        return f"\"{v}\""
    return "—" if v is None else str(v)


def _settings(study: dict[str, Any], keys: tuple[str, ...]) -> str:
    return "; ".join(f"{k} {_value(study[k])}" for k in keys if study.get(k) is not None)


def _models_text(spec: dict[str, Any], sizes: dict[str, int]) -> list[str]:
    lines = []
    labels = list(dict.fromkeys([*sizes]))
    described: dict[str, str] = {}
    for m in spec.get("models") or []:
        label = m.get("name") or (f"{m['zoo']}-{m.get('size', 'tiny')}" if m.get("zoo") else
                                  str(m.get("hub") or m.get("path") or "?").rstrip("/").split("/")[-1])
        how = (f"zoo {m['zoo']} {m.get('size', '')}, pretrained here, regime {m.get('regime') or 'default'}"
               + (f", exposures {_value(m['exposures'])}" if m.get("exposures") else "")) if m.get("zoo") else \
            f"{m.get('hub') or m.get('path')}"
        described[label] = how
        if label not in labels:
            labels.append(label)
    for label in labels:
        size = f"{F.params(sizes[label])} parameters" if label in sizes else "size not recorded"
        lines.append(f"{label}: {size}" + (f" ({described[label]})" if label in described else ""))
    return lines


def nonmember_counts(store: Store) -> list[int]:
    """The non-member count of every finished privacy cell (what resolves a TPR at low FPR)."""
    return [int(c["environment"]["n_nonmembers"]) for c in store.cells("privacy")
            if c["status"] == "done" and "n_nonmembers" in (c["environment"] or {})]


def _privacy_data(store: Store) -> str | None:
    per: dict[tuple[int, int], set[str]] = defaultdict(set)  # (members, non-members) -> their sources
    for c in store.cells("privacy"):
        env = c["environment"] or {}
        if c["status"] == "done" and "n_members" in env:
            per[(int(env["n_members"]), int(env["n_nonmembers"]))].add(str(env.get("mi_source", "")))
    if not per:
        return None
    parts = [f"{F.count(a)} members + {F.count(b)} non-members per model and precision" for (a, b) in sorted(per)]
    return "; ".join(parts)


def _trojan_data(store: Store) -> str | None:
    n: dict[str, set[int]] = defaultdict(set)
    for r in store.metrics(kind="trojan", name="n_inputs"):
        n[r["labels"].get("input", "")].add(int(r["value"]))
    train = {int((c["environment"] or {}).get("n_train", 0)) for c in store.cells("finetune") if c["status"] == "done"}
    poison = {json.dumps((c["environment"] or {}).get("poison", {}).get("rate")) for c in store.cells("finetune")
              if c["status"] == "done"}
    if not n and not train:
        return None
    parts = []
    if train:
        parts.append(f"{'/'.join(F.count(t) for t in sorted(train))} training rows"
                     + (f" (poisoned share {'/'.join(sorted(poison))})" if poison - {"null"} else ""))
    for inp in ("triggered", "clean"):
        if n.get(inp):
            parts.append(f"{'/'.join(F.count(x) for x in sorted(n[inp]))} {inp} test inputs")
    return "; ".join(parts)


def constant_columns(table: Table, candidates: tuple[str, ...]) -> dict[str, Any]:
    """Those of the `candidates` columns (settings such as seed, baseline, DAP1 — never a measured value) that
    hold one value on every row of `table` (at least 2 rows): name -> that value."""
    if len(table.rows) < 2:
        return {}
    out = {}
    for i, c in enumerate(table.columns):
        if c in candidates and len({json.dumps(r[i], default=str) for r in table.rows}) == 1:
            out[c] = table.rows[0][i]
    return out


def drop_columns(table: Table, names: list[str]) -> Table:
    """`table` without the columns `names` (its key columns and highlights kept)."""
    idx = [i for i, c in enumerate(table.columns) if c not in names]
    keys = sum(1 for i in idx if i < table.keys)
    return Table(table.title, [table.columns[i] for i in idx], [[r[i] for i in idx] for r in table.rows],
                 list(table.notes), table.wrap, list(table.highlight), max(keys, 1), dict(table.formats))


def setup_table(store: Store, constants: dict[str, dict[str, Any]] | None = None) -> Table:
    """Field / value rows: description, models with parameter counts, data and n, seeds, precisions, each study's
    settings, run date, wall time, code version, environment; `constants` (table title -> {column: value}) adds
    the columns the report's tables dropped because every row had the same value."""
    spec = last_spec(store)
    runs = store.runs()
    env = json.loads(runs[-1]["environment"]) if runs else {}
    rows: list[list[Any]] = []
    if spec.get("description"):
        rows.append(["description", " ".join(str(spec["description"]).split())])
    rows.append(["spec", f"{spec.get('name', runs[-1]['spec_name'] if runs else '—')}"
                 + (f" (sha256 {runs[-1]['spec_sha256'][:12]})" if runs else "")])
    for i, line in enumerate(_models_text(spec, model_sizes(store))):
        rows.append(["models" if i == 0 else "", line])
    if spec.get("seeds") is not None:
        rows.append(["seeds", _value(spec["seeds"]) + " (each seed: one training run; CIs cover evaluation-sample "
                     "noise only)"])
    precs = spec.get("precisions") or sorted({r["labels"].get("precision") for r in store.metrics(kind="privacy")
                                              if r["labels"].get("precision")})
    if precs:
        rows.append(["precisions", ", ".join(f"{p} ({bits_of(p)} bit)" for p in precs)])
    studies = spec.get("studies") or {}
    pd_ = _privacy_data(store)
    if studies.get("privacy") or pd_:
        rows.append(["privacy study", "; ".join(x for x in (pd_, _settings(studies.get("privacy") or {},
                                                                             PRIVACY_SETTINGS)) if x)])
    td = _trojan_data(store)
    if studies.get("trojan") or td:
        t = studies.get("trojan") or {}
        rows.append(["trojan study", "; ".join(x for x in (td, f"DAP1 {_value(t['dap1'])}; DAP2 {_value(t['dap2'])}"
                                                          if t.get("dap1") else "", _settings(t, TROJAN_SETTINGS))
                                                 if x)])
    for title, cols in (constants or {}).items():
        if cols:
            rows.append([f"every row of {title}", "; ".join(f"{k} {_value(v)}" for k, v in cols.items())])
    if runs:
        rows.append(["run date", f"{_utc(runs[0]['started'])}" + (f" (last of {len(runs)} invocations "
                                                                    f"{_utc(runs[-1]['started'])})" if len(runs) > 1 else "")])
        wall = wall_seconds(store)
        cpu = sum(float(c["seconds"] or 0.0) for c in store.cells())
        rows.append(["wall time", (F.seconds(wall) if wall is not None else "unfinished")
                     + f" ({F.seconds(cpu)} summed over cells; executor {runs[-1]['executor']})"])
    code = env.get("code") or {}
    version = code.get("quantrisk") or (env.get("packages") or {}).get("quantrisk")
    commit = code.get("git_commit")
    rows.append(["code", f"quantrisk {version or '—'}"
                 + (f", git {commit[:12]}" + (" with uncommitted changes" if code.get("git_dirty") else "")
                    if commit else ", git commit not recorded")])
    pk = env.get("packages") or {}
    rows.append(["environment", ", ".join(x for x in (f"Python {env.get('python')}" if env.get("python") else "",
                                                      *(f"{k} {pk[k]}" for k in ("torch", "transformers") if k in pk),
                                                      str(env.get("device_name") or env.get("device") or ""),
                                                      str(env.get("platform") or "")) if x)])
    out = Table("Setup", ["field", "value"], rows)
    out.wrap = True
    return out
