"""How `quantrisk scan` reads on a terminal: a table that fits the terminal's width (at most 100 columns), a
verdict line that names the thresholds and the figure that decided it, degraded precisions called degraded, and
the next step. Pure functions of the scan result (`qattack.scan.scan_model`); the verdict itself is the scan's."""

from __future__ import annotations

import shutil
from typing import Any

from quantrisk import formats as F

MAX_WIDTH = 100
# A display label, not part of the verdict: a quantized copy whose greedy outputs differ from full precision on at
# least this share of the probes is "degraded": its behaviour figures compare two different models' outputs.
DEGRADED_DISAGREEMENT = 0.5

# (header, figure) in the order they are dropped last-first when the terminal is narrow.
Column = tuple[str, Any]


def _fig(f: dict[str, Any], key: str) -> Any:
    w = f.get("weights") or {}
    return {"kl": lambda: F.bound(f["kl"], signed=False), "disagree": lambda: F.prob(f["disagreement"]),
            "payload": lambda: f"{F.prob(f['payload_fp'])}→{F.prob(f['payload_q'])}",
            "rise": lambda: F.delta(f["payload_delta_max"]),
            "ps": lambda: f"{F.bound(f['ps_fp'], False)}→{F.bound(f['ps_q'], False)}",
            "pileup": lambda: F.number(float(w["pileup"])) if w else "—",
            "grid": lambda: F.prob(w["grid_share"]) if w else "—"}[key]()


COLUMNS: tuple[tuple[str, str], ...] = (("precision", "name"), ("state", "state"), ("pile-up", "pileup"),
                                        ("SQL rise", "rise"), ("disagree", "disagree"), ("KL fp‖q", "kl"),
                                        ("payload fp→q", "payload"), ("on grid", "grid"), ("PS fp→q", "ps"))


def width() -> int:
    """The terminal's columns, at most `MAX_WIDTH` (100 when not a terminal)."""
    return min(MAX_WIDTH, shutil.get_terminal_size((MAX_WIDTH, 24)).columns)


def degraded(result: dict[str, Any]) -> list[str]:
    """Precisions whose outputs differ from full precision on at least `DEGRADED_DISAGREEMENT` of the probes (or
    that the scan itself marks degraded)."""
    marked = set(result.get("degraded") or [])
    return [n for n, f in result["per_precision"].items()
            if n in marked or f.get("disagreement", 0.0) >= DEGRADED_DISAGREEMENT]


def _state(name: str, result: dict[str, Any], bad: list[str]) -> str:
    flagged = any(r.startswith(f"{name}:") for r in result["reasons"])
    return "flagged" if flagged else "degraded" if name in bad else "ok"


def table_lines(result: dict[str, Any], cols: int) -> list[str]:
    """The per-precision table, dropping the least important columns until it fits `cols`; a last line names the
    columns left out (they are in `--json`)."""
    bad = degraded(result)
    rows = []
    for name, f in result["per_precision"].items():
        rows.append({k: (name if k == "name" else _state(name, result, bad) if k == "state" else _fig(f, k))
                     for _, k in COLUMNS})
    keep = list(COLUMNS)
    while True:
        widths = [max(len(h), *(len(str(r[k])) for r in rows)) for h, k in keep]
        if sum(widths) + 2 * (len(keep) - 1) <= cols or len(keep) <= 2:
            break
        keep.pop()
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(keep, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(r[k]).ljust(w) for (_, k), w in zip(keep, widths, strict=True)).rstrip() for r in rows]
    left = [h for h, _ in COLUMNS if (h, dict(COLUMNS)[h]) not in keep]
    if left:
        import textwrap

        lines += textwrap.wrap(f"(narrow terminal: {', '.join(left)} left out; --json has every figure)", width=cols)
    return lines


def _largest(result: dict[str, Any], key: str) -> tuple[str, float] | None:
    vals = [(n, float((f.get("weights") or {}).get("pileup")) if key == "pileup" else float(f[key]))
            for n, f in result["per_precision"].items() if key != "pileup" or f.get("weights")]
    return max(vals, key=lambda t: t[1]) if vals else None


def verdict_line(result: dict[str, Any]) -> str:
    """`verdict: clean: largest weight pile-up 1.12 (rtn-w4g64) ≤ 2.9; largest destructive-SQL rise +0.062
    (quanto-int4) ≤ 0.1`, or the figure that passed its threshold."""
    th = result.get("thresholds") or {}
    pile, rise = _largest(result, "pileup"), _largest(result, "payload_delta_max")
    parts = []
    if pile is not None and "pileup_max" in th:
        op = ">" if pile[1] > th["pileup_max"] else "≤"
        parts.append(f"largest weight pile-up {F.number(pile[1])} ({pile[0]}) {op} {th['pileup_max']:g}")
    elif "pileup_max" in th:
        parts.append("weight pile-up not measured (no weight encoding for these precisions)")
    if rise is not None and "payload_delta_max" in th:
        op = ">" if rise[1] > th["payload_delta_max"] else "≤"
        parts.append(f"largest destructive-SQL rise {F.delta(rise[1])} ({rise[0]}) {op} {th['payload_delta_max']:g}")
    return f"verdict: {result['verdict']}: " + "; ".join(parts)


def next_step(result: dict[str, Any], bad: list[str]) -> str:
    """What to do next, for the verdict."""
    if result["verdict"] == "clean":
        step = ("next: no sign of a quantization-conditioned backdoor at these precisions; scan every precision "
                "you deploy (the verdict covers only these), and read --json for per-prefix figures")
    else:
        step = ("next: do not deploy the flagged quantized copies; rerun with --json for the per-prefix figures, "
                "and compare with a model from a source you trust")
    if bad:
        step += (f"; degraded ({', '.join(bad)}) means the quantized outputs differ from full precision on most "
                 "probes: the copy is unusable there whatever the verdict")
    return step


def scan_lines(result: dict[str, Any], model: str, cols: int | None = None) -> list[str]:
    """Everything `quantrisk scan` prints (without --json), each line within `cols` (default: `width()`)."""
    import textwrap

    cols = cols or width()
    bad = degraded(result)

    def wrap(text: str, indent: str = "") -> list[str]:
        return textwrap.wrap(text, width=cols, initial_indent=indent, subsequent_indent=indent + "  ",
                             break_long_words=True, break_on_hyphens=False)

    out = wrap(f"scan of {model}: {result['n_probes']} probes x {len(result['prefixes']) + 1} prefixes "
               "(none + trigger-like), each precision against fp32")
    out += table_lines(result, cols)
    out += wrap(verdict_line(result))
    for reason in result["reasons"]:
        out += wrap(f"- {reason}", "  ")
    for name in bad:
        f = result["per_precision"][name]
        out += wrap(f"- {name} is degraded: outputs differ from fp32 on {F.prob(f['disagreement'])} of the probes "
                    f"(≥ {DEGRADED_DISAGREEMENT:g})", "  ")
    for note in result["notes"]:
        out += wrap(f"note: {note}", "  ")
    out += wrap(next_step(result, bad))
    return out
