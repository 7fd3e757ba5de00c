"""Report sections of the trojan study: the ASR / false-trigger table (every metric folded beneath it) and plots.

The study plugs its sections into the report from below: each is registered in the report's section registry
(`@section(name, "studies")`, in the order they appear on the page), and `quantrisk.studies` imports this module
where the application is assembled. The tables read the trojan metric registry (`trojan.metrics`: its order, its
orientation, which metrics are bounded), so they live here, with the study, and the report imports no study.
Every section is empty when the store has no trojan cells.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from quantrisk import formats as F
from quantrisk.report import plots, tables
from quantrisk.report.sections import Section, SectionContext, plot, section
from quantrisk.report.tables import (
    TROJAN_KEYS,
    Table,
    bits_of,
    ci_text,
    extremes_note,
    rate_delta,
    trojan_baseline,
    trojan_cells,
)
from quantrisk.report.truncation import trojan_truncation
from quantrisk.store import Store
from quantrisk.trojan.metrics import TROJAN_METRICS, bounded_metric_names

# the prefixes whose rows at 0 or 1 earn a note in the trojan tables: the report's and the bounded trojan metrics
BOUNDED_PREFIXES: tuple[str, ...] = (*tables.BOUNDED_PREFIXES, *bounded_metric_names())


def _sort_trojan(key: tuple[str, ...]) -> tuple[Any, ...]:
    model, kind, d1, d2, seed = key
    return (model, kind != "poisoned", kind, -bits_of(d1), d1, -bits_of(d2), d2, seed)


def _rate_cell(row: dict[str, Any] | None, n: dict[str, Any] | None) -> str | None:
    if row is None:
        return None
    text = ci_text(row["value"], row["ci_low"], row["ci_high"])
    return f"{text} n={F.count(n['value'])}" if n else text


def trojan_table(store: Store) -> Table | None:
    """The compact trojan table: per (model, kind, DAP1, DAP2, seed) the ASR and false-trigger rate with 95% Wilson
    CIs and n, ΔASR vs the DAP1 = DAP2 = full-precision cell (Newcombe 95% CI), mean payload signal on triggered
    and clean inputs, and SQL quality on clean inputs (JS-K, EX)."""
    cells = trojan_cells(store)
    if not cells:
        return None
    out = Table("Trojan: attack success and false triggers [95% Wilson CI], change vs the full-precision cell",
                ["model", "kind", "DAP1", "DAP2", "seed", "ASR [95% CI]", "ΔASR [95% CI, unadj.]", "FTR [95% CI]",
                 "PS trig.", "PS clean", "JS-K clean", "EX clean"], keys=5)
    values: dict[str, list[float]] = defaultdict(list)
    for key in sorted(cells, key=_sort_trojan):
        m = cells[key]
        d = rate_delta(cells, key, "asr", "triggered")
        base = trojan_baseline(cells, key)
        delta = "baseline" if key == base else (ci_text(*d, signed=True) if d else None)
        row: list[Any] = [*key, _rate_cell(m.get("asr"), m.get("n_inputs[input=triggered]")), delta,
                          _rate_cell(m.get("ftr"), m.get("n_inputs[input=clean]"))]
        for name in ("ps_mean[input=triggered]", "ps_mean[input=clean]", "js_k[input=clean]", "ex[input=clean]"):
            r = m.get(name)
            row.append(None if r is None else F.prob(r["value"]))
            if r:
                values[name].append(r["value"])
        for name in ("asr", "ftr"):
            if name in m:
                values[name].append(m[name]["value"])
        out.rows.append(row)
    out.notes = extremes_note(values, BOUNDED_PREFIXES)
    return out


# Columns the full table leaves out: payload_rate[input=triggered|clean] repeat asr / ftr.
DUPLICATE_TROJAN_METRICS: tuple[str, ...] = ("payload_rate",)


def trojan_full_table(store: Store) -> Table | None:
    """Every scalar trojan metric per (model, kind, dap1, dap2, seed) (labels beyond those keys are folded into the
    column name), without the columns that repeat another one (`payload_rate` = asr / ftr)."""
    cells = trojan_cells(store)
    if not cells:
        return None
    names = list(dict.fromkeys(n for m in cells.values() for n in m if n.split("[")[0] not in DUPLICATE_TROJAN_METRICS))
    registered = list(TROJAN_METRICS)

    def base(name: str) -> str:
        return name.split("[", 1)[0]

    # the registered trojan metrics first, in registry order, marked ↑ (higher is better) or ↓; then timings, memory
    names.sort(key=lambda n: registered.index(base(n)) if base(n) in registered else len(registered))  # stable
    titles = [n + (" " + ("↑" if TROJAN_METRICS[base(n)].higher_is_better else "↓") if base(n) in TROJAN_METRICS else "")
              for n in names]
    out = Table("Trojan: every metric per DAP1 × DAP2 (↑ higher is better, ↓ lower is better)", [*TROJAN_KEYS, *titles])
    values: dict[str, list[float]] = defaultdict(list)
    for key in sorted(cells, key=_sort_trojan):
        m = cells[key]
        out.rows.append([*key, *((m[n]["value"] if n in m else None) for n in names)])
        for n in names:
            if n in m:
                values[n].append(m[n]["value"])
    out.notes = extremes_note(values, BOUNDED_PREFIXES)
    return out


def trojan_study_table(c: SectionContext) -> Table | None:
    """The trojan table (once per report): the trojan sections appear only when it exists."""
    return c.once("trojan", lambda: trojan_table(c.store))


@section("trojan", "studies")
def _trojan(c: SectionContext) -> list[Section]:
    tt = trojan_study_table(c)
    return [] if tt is None else [
        Section("Trojan study", "ASR: share of triggered inputs whose output contains the payload keyword; false "
                "triggers (FTR): the same on clean inputs; 95% Wilson intervals and n. ΔASR: against the DAP1 = DAP2 "
                "= full-precision cell (Newcombe 95% interval, unadjusted). PS: mean payload signal. "
                + trojan_truncation(c.store),
                c.slim(tt, "the trojan table", ("model", "DAP1", "seed")), details=trojan_full_table(c.store))]


@plot("trojan rates", "ASR and false triggers per DAP1 × DAP2", file="trojan_rates.png")
def _trojan_rates(c: SectionContext) -> bytes | None:
    return None if trojan_study_table(c) is None else plots.trojan_rates(c.store)


@plot("payload signal", "Payload signal", file="payload_signal.png")
def _payload(c: SectionContext) -> bytes | None:
    return None if trojan_study_table(c) is None else plots.payload_violins(c.store)
