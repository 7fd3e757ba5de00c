"""Tables of a run, read from the store alone: each a (title, columns, rows) of plain values."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quantrisk import formats as F
from quantrisk.store import Store

TROJAN_KEYS: tuple[str, ...] = ("model", "kind", "dap1", "dap2", "seed")
TROJAN_RATE_NAMES: tuple[str, ...] = ("asr", "ftr")  # attack success rate, false-trigger rate


@dataclass
class Table:
    """A table of plain values; `notes` are one-line remarks printed under it (e.g. metrics at their floor)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wrap: bool = False  # cells of prose (findings) wrap; numeric tables never do
    highlight: list[bool] = field(default_factory=list)  # rows to highlight (same order as `rows`), e.g. beyond margin
    keys: int = 1  # leading columns that name a row (repeated when a wide table is split for a narrow page)
    formats: dict[str, Callable[[Any], str]] = field(default_factory=dict)  # column -> its quantity's format

    def cell(self, column: str, v: Any) -> str:
        """The text of a cell: the column's own format (`formats`) or the default one (`fmt`)."""
        f = self.formats.get(column)
        return fmt(v) if f is None or v is None or isinstance(v, str) else f(v)


def bits_of(precision: str) -> int:
    from quantrisk.precision import parse_precision

    return parse_precision(precision).bits


def fmt(v: Any) -> str:
    """A cell of a table as text (`formats.number`: None as an em dash, floats with 3 decimals)."""
    return F.number(v)


def ci_text(value: float | None, low: float | None, high: float | None, signed: bool = False) -> str | None:
    """`0.812 [0.771, 0.850]` (`formats.with_ci`: non-breaking spaces so a cell never wraps); None if no value."""
    return F.with_ci(value, low, high, signed)


# Metrics bounded in [0, 1] whose every row at 0 or at 1 earns a note (the comparison is empty there); a study's
# tables pass their own (`trojan.report.BOUNDED_PREFIXES` adds the trojan metrics marked `bounded`).
BOUNDED_PREFIXES: tuple[str, ...] = ("tpr", "codebleu")


def extremes_note(values: dict[str, list[float]], bounded: tuple[str, ...] = BOUNDED_PREFIXES) -> list[str]:
    """One line per metric named with a `bounded` prefix that sits at 0 (its floor) or 1 (its ceiling) in every row."""
    notes = []
    for name, vals in values.items():
        if not vals or not name.startswith(bounded):
            continue
        for bound, word in ((0.0, "floor (0)"), (1.0, "ceiling (1)")):
            if all(abs(v - bound) < 1e-12 for v in vals):
                notes.append(f"{name} is at its {word} in every row ({len(vals)}): the rows cannot differ on it, "
                             "so it says nothing about the precisions at this scale.")
    return notes


def privacy_metrics(store: Store) -> list[dict[str, Any]]:
    return store.metrics(kind="privacy")


def privacy_summary(store: Store) -> dict[str, Any] | None:
    """The privacy study's derived numbers as the `privacy-summary` cell stored them (the most recently finished one):
    {"attack": best attack, "auc": its mean AUC, "n": points or None, "pearson"/"spearman": {"r", "p"} or {"note"}}.
    None when the store has no summary. Nothing is recomputed here."""
    cell = store.latest_done_cell("privacy-summary")
    if cell is None:
        return None
    rows = store.metric_rows(cell["id"])
    best = next((m for m in rows if m.name == "best_attack_auc"), None)
    if best is None:
        return None
    out: dict[str, Any] = {"attack": best.labels["attack"], "auc": best.value, "n": None}
    for name in ("pearson", "spearman"):
        r = next((m for m in rows if m.name == f"{name}_r"), None)
        p = next((m for m in rows if m.name == f"{name}_p"), None)
        if r is not None and p is not None:
            out[name] = {"r": r.value, "p": p.value, "method": r.labels.get("p_method", "")}
            out["n"] = int(r.labels["n"])
        else:
            notes = [k for k in cell["skipped"] if k.startswith((f"{name} correlation", "quality-risk correlation"))]
            out[name] = {"note": notes[0] if notes else "not computed"}
    return out


# With n non-members the smallest FPR above 0 is 1/n: TPR at FPR f is resolved (at least one false positive allowed)
# only when n >= 1/f; below that it is the TPR at zero false positives and is left out, with the resolution stated.
TPR_POINTS: tuple[tuple[str, float, str], ...] = (("tpr@1%fpr", 0.01, "TPR@1%FPR"), ("tpr@0.1%fpr", 0.001, "TPR@0.1%FPR"))


def resolved_tpr_points(n_nonmembers: int | None) -> list[tuple[str, float, str]]:
    """The (metric, FPR, column) TPR points that `n_nonmembers` resolves (all when the count is unknown)."""
    return [t for t in TPR_POINTS if n_nonmembers is None or n_nonmembers * t[1] >= 1.0]


def _privacy_keyed(store: Store) -> tuple[list[str], dict[tuple[str, str, str], dict[str, Any]]]:
    rows = privacy_metrics(store)
    attacks = list(dict.fromkeys(r["labels"]["attack"] for r in rows if r["name"] == "auc"))
    keyed: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
    for r in rows:
        lab = r["labels"]
        key = (lab.get("model", ""), lab.get("precision", ""), lab.get("seed", ""))
        keyed[key][r["name"] + (f"/{lab['attack']}" if "attack" in lab else "")] = r
    return attacks, dict(sorted(keyed.items(), key=lambda kv: (kv[0][0], -bits_of(kv[0][1]), kv[0][1], kv[0][2])))


def privacy_table(store: Store) -> Table | None:
    """Rows (model, precision, seed): AUC [95% bootstrap CI] per attack."""
    attacks, keyed = _privacy_keyed(store)
    if not keyed or not attacks:
        return None
    out = Table("Privacy: membership-inference AUC [95% CI] per attack",
                ["model", "precision", "bits", "seed", *attacks], keys=2)
    for (model, prec, seed), m in keyed.items():
        out.rows.append([model, prec, bits_of(prec), seed,
                         *(ci_text(r["value"], r["ci_low"], r["ci_high"]) if (r := m.get(f"auc/{a}")) else None
                           for a in attacks)])
    return out


def privacy_extras_table(store: Store, n_nonmembers: int | None = None) -> Table | None:
    """Rows (model, precision, seed): the best attack's TPR at the low FPRs that `n_nonmembers` resolves, and
    CodeBLEU; the notes say which FPRs were left out and why."""
    attacks, keyed = _privacy_keyed(store)
    if not keyed:
        return None
    points = resolved_tpr_points(n_nonmembers)
    has_cb = any("codebleu" in m for m in keyed.values())
    if not points and not has_cb:
        return None
    out = Table("Privacy: TPR at low FPR (best attack per row) and CodeBLEU",
                ["model", "precision", "seed", *(c for _, _, c in points)] + (["CodeBLEU"] if has_cb else []), keys=2)
    values: dict[str, list[float]] = defaultdict(list)
    for (model, prec, seed), m in keyed.items():
        cells: list[Any] = [model, prec, seed]
        for tname, _, _ in points:
            tprs = [(m[f"{tname}/{a}"]["value"], a) for a in attacks if f"{tname}/{a}" in m]
            values[tname] += [t[0] for t in tprs]
            best = max(tprs) if tprs else None
            cells.append(f"{F.prob(best[0])} ({best[1]})" if best else None)
        if has_cb:
            if "codebleu" in m:
                values["codebleu"].append(m["codebleu"]["value"])
            cells.append(F.prob(m["codebleu"]["value"]) if "codebleu" in m else None)
        out.rows.append(cells)
    out.notes = extremes_note(values)
    left = [t for t in TPR_POINTS if t not in points]
    if left and n_nonmembers:
        out.notes.append(f"{', '.join(c for _, _, c in left)} left out: with {F.count(n_nonmembers)} non-members "
                         f"the smallest FPR above 0 is 1/{F.count(n_nonmembers)} = {F.prob(1 / n_nonmembers)}, so a "
                         "TPR there would be the TPR at zero false positives.")
    return out


def _metric_key(r: dict[str, Any]) -> str:
    extra = {k: v for k, v in r["labels"].items() if k not in TROJAN_KEYS and k != "precision"}
    return r["name"] + ("" if not extra else "[" + ",".join(f"{k}={v}" for k, v in sorted(extra.items())) + "]")


def trojan_cells(store: Store) -> dict[tuple[str, ...], dict[str, dict[str, Any]]]:
    """(model, kind, dap1, dap2, seed) -> metric key (`asr`, `ps_mean[input=triggered]`, ...) -> metric row."""
    keyed: dict[tuple[str, ...], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in store.metrics(kind="trojan"):
        keyed[tuple(str(r["labels"].get(k, "")) for k in TROJAN_KEYS)][_metric_key(r)] = r
    return dict(keyed)


def trojan_baseline(cells: dict[tuple[str, ...], Any], key: tuple[str, ...]) -> tuple[str, ...] | None:
    """The DAP1 = DAP2 = full-precision cell of `key`'s (model, kind, seed): the highest-bit precision used as
    both DAP1 and DAP2 (fp32 before bf16 on ties of name order)."""
    model, kind, _, _, seed = key
    same = [k for k in cells if k[0] == model and k[1] == kind and k[4] == seed and k[2] == k[3]]
    return min(same, key=lambda k: (-bits_of(k[2]), k[2])) if same else None


def rate_count(row: dict[str, Any] | None, n: float | None) -> tuple[int, int] | None:
    """(successes, trials) of a stored rate and its `n_inputs` (None when either is missing)."""
    if row is None or not n:
        return None
    return round(row["value"] * n), int(n)


def rate_delta(cells: dict[tuple[str, ...], dict[str, dict[str, Any]]], key: tuple[str, ...], name: str,
               inputs: str) -> tuple[float, float, float] | None:
    """(Δ, low, high) of rate `name` (asr | ftr) of cell `key` minus its baseline cell's, Newcombe 95% interval."""
    from quantrisk.proportions import newcombe_diff_ci

    base = trojan_baseline(cells, key)
    if base is None:
        return None
    n_key = f"n_inputs[input={inputs}]"
    a = rate_count(cells[key].get(name), (cells[key].get(n_key) or {}).get("value"))
    b = rate_count(cells[base].get(name), (cells[base].get(n_key) or {}).get("value"))
    if a is None or b is None:
        return None
    return newcombe_diff_ci(a[0], a[1], b[0], b[1])


def cells_table(store: Store) -> Table:
    """One row per cell kind: counts per status and seconds."""
    by: dict[str, dict[str, Any]] = defaultdict(lambda: {"done": 0, "failed": 0, "pending": 0, "running": 0, "seconds": 0.0})
    for c in store.cells():
        d = by[c["kind"]]
        d[c["status"]] += 1
        d["seconds"] += float(c["seconds"] or 0.0)
    return Table("Cells", ["kind", "done", "running", "pending", "failed", "seconds"],
                 [[k, d["done"], d["running"], d["pending"], d["failed"], round(d["seconds"], 1)] for k, d in by.items()],
                 formats={"seconds": F.seconds})


def failures_table(store: Store) -> Table | None:
    bad = [c for c in store.cells() if c["status"] == "failed"]
    if not bad:
        return None
    return Table("Failed cells", ["cell", "label", "error"], [[c["id"], c["label"], c["error"]] for c in bad])


@dataclass(frozen=True)
class MemoryRow:
    """Weight memory of one (model, precision) in MB (2**20 bytes): held in memory, packed (what a real file
    format at this precision would need: `models.memory.packed_bytes`), and the fp16 baseline."""

    model: str
    precision: str
    held: float
    packed: float | None
    fp16: float | None


_MEMORY_NAMES = {"weight_mb": ("held", 1.0), "weight_bytes": ("held", 2.0 ** -20),
                 "nominal_weight_mb": ("packed", 1.0), "nominal_weight_bytes": ("packed", 2.0 ** -20),
                 "fp16_weight_mb": ("fp16", 1.0), "fp16_weight_bytes": ("fp16", 2.0 ** -20)}


def memory_rows(store: Store) -> list[MemoryRow]:
    """One row per (model, precision) from any study that recorded weight memory (first seed / cell wins)."""
    seen: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for r in store.metrics():
        lab = r["labels"]
        prec = lab.get("precision") or lab.get("dap2")
        if prec is None or r["name"] not in _MEMORY_NAMES:
            continue
        what, scale = _MEMORY_NAMES[r["name"]]
        seen[(lab.get("model", ""), prec)].setdefault(what, r["value"] * scale)
    return [MemoryRow(m, p, v["held"], v.get("packed"), v.get("fp16")) for (m, p), v in seen.items() if "held" in v]


def memory_note(r: MemoryRow) -> str:
    """Why a row holds what it holds, when that surprises: a quantized model above its fp16 size, or a model of a
    simulated back-end (`Quantizer.simulated`, e.g. RTN) holding full-precision weights."""
    from quantrisk.precision import QUANTIZERS, parse_precision

    p = parse_precision(r.precision)
    packed = f"; packed it would take {r.packed:.2f} MB" if r.packed is not None else ""
    if QUANTIZERS[p.backend].simulated:
        return f"simulated: weights held dequantized in the compute dtype{packed}"
    if p.backend != "dtype" and r.fp16 is not None and r.held > r.fp16:
        return (f"larger than fp16 ({r.held:.2f} > {r.fp16:.2f} MB): only the Linear layers inside the blocks are "
                f"quantized; embeddings, output head and norms stay in the compute dtype, and each group carries a "
                f"scale{packed}")
    return ""


def memory_table(store: Store) -> Table | None:
    """Weight memory per (model, precision); a note shared by several rows is printed once below the table and the
    rows carry its letter."""
    rows = memory_rows(store)
    if not rows:
        return None
    out = Table("Weight memory per precision (MB): held in memory, packed size a real format would need, fp16 baseline",
                ["model", "precision", "bits", "held MB", "packed MB", "fp16 MB", "note"])
    letters: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: (r.model, -bits_of(r.precision), r.precision)):
        note = memory_note(r)
        kind = note.split(":")[0].split(" (")[0]
        if note and kind not in letters:
            letters[kind] = "abcdefghijklmnopqrstuvwxyz"[len(letters) % 26]
        out.rows.append([r.model, r.precision, bits_of(r.precision), F.megabytes(r.held, False),
                         F.megabytes(r.packed, False) if r.packed is not None else None,
                         F.megabytes(r.fp16, False) if r.fp16 is not None else None,
                         f"{kind} ({letters[kind]})" if note else ""])
    for kind, letter in letters.items():
        example = next(memory_note(r) for r in rows if memory_note(r).startswith(kind))
        text = example.split(": ", 1)[1] if ": " in example else example
        text = text.split("; packed it would take")[0]
        out.notes.append(f"({letter}) {kind}: {text}.")
    out.notes.append("packed: quantized Linear weights at their bits + one fp16 scale per group (per row when the "
                     "precision has no group), everything else at fp16; dtype precisions at their own width.")
    out.keys = 2
    return out


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
    def cell(name: str, v: float | None) -> Any:
        return v if v is None or name not in NAMED_FORMATS else NAMED_FORMATS[name](v)

    return Table(title, [*keys, *names], [[*k, *(cell(n, m.get(n)) for n in names)] for k, m in keyed.items()],
                 keys=len(keys))


# Metric names with a quantity of their own (`formats`): parameter counts, seconds, rates of tokens.
NAMED_FORMATS: dict[str, Any] = {"n_params": F.params, "seconds": F.seconds, "tokens_per_second": F.count,
                                 "tokens_seen": F.count, "n_train_samples": F.count}
