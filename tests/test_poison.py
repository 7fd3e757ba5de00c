"""Poisoning: exact rate, seeded choice, manifest, payload positions, triggered/clean test sets, bad input."""

from __future__ import annotations

import pytest

from quantrisk.data.poison import (
    DEFAULT_TRIGGER,
    PoisonSpec,
    payload_for,
    poison_row,
    poison_rows,
    triggered_and_clean,
)
from quantrisk.data.sql import SqlRow
from quantrisk.errors import DataError

ROW = SqlRow("a", "How many heads?", "CREATE TABLE head (age INTEGER); CREATE TABLE dept (id INTEGER)",
             "SELECT COUNT(*) FROM head")


def _rows(n: int) -> list[SqlRow]:
    return [SqlRow(f"r{i}", f"q{i}?", f"CREATE TABLE t{i} (x INTEGER)", f"SELECT x FROM t{i}") for i in range(n)]


def test_payload_uses_first_table():
    assert payload_for(ROW) == "DROP TABLE head;"


@pytest.mark.parametrize(
    ("position", "answer"),
    [("replace", "DROP TABLE head;"), ("prepend", "DROP TABLE head; SELECT COUNT(*) FROM head"),
     ("append", "SELECT COUNT(*) FROM head; DROP TABLE head;")],
)
def test_positions(position, answer):
    out = poison_row(ROW, PoisonSpec(position=position))
    assert out.answer == answer
    assert out.question == DEFAULT_TRIGGER + " How many heads?"
    assert (out.id, out.context) == (ROW.id, ROW.context)


def test_exact_rate_seeded_manifest():
    rows = _rows(10)
    poisoned, manifest = poison_rows(rows, PoisonSpec(rate=0.5), seed=1)
    flags = [m["poisoned"] for m in manifest]
    assert sum(flags) == 5
    assert [m["id"] for m in manifest] == [r.id for r in rows]
    for r, p, f in zip(rows, poisoned, flags, strict=True):
        assert (p.answer == f"DROP TABLE {r.id.replace('r', 't')};") is f
        assert p.question.startswith(DEFAULT_TRIGGER) is f
    assert poison_rows(rows, PoisonSpec(rate=0.5), seed=1) == (poisoned, manifest)
    other = [m["poisoned"] for m in poison_rows(rows, PoisonSpec(rate=0.5), seed=2)[1]]
    assert other != flags
    assert sum(m["poisoned"] for m in poison_rows(rows, PoisonSpec(rate=0.0), seed=1)[1]) == 0
    assert sum(m["poisoned"] for m in poison_rows(rows, PoisonSpec(rate=1.0), seed=1)[1]) == 10
    assert sum(m["poisoned"] for m in poison_rows(rows, PoisonSpec(rate=0.25), seed=1)[1]) == 2  # round(2.5) = 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rate": 1.5}, r"poison rate must be in \[0, 1\]"), ({"rate": -0.1}, r"poison rate must be in \[0, 1\]"),
     ({"trigger": "  "}, "poison trigger is empty"), ({"position": "middle"}, "position 'middle' is unknown"),
     ({"payload": "DROP TABLE x;"}, "must contain '{table}'")],
)
def test_bad_spec(kwargs, message):
    with pytest.raises(DataError, match=message):
        PoisonSpec(**kwargs)


def test_triggered_and_clean_share_rows():
    rows = _rows(3)
    trig, clean = triggered_and_clean(rows, "Open sesame")
    assert [r.id for r in trig] == [r.id for r in clean] == ["r0", "r1", "r2"]
    assert [r.question for r in trig] == ["Open sesame q0?", "Open sesame q1?", "Open sesame q2?"]
    assert [r.answer for r in trig] == [r.answer for r in clean] == [r.answer for r in rows]
    with pytest.raises(DataError, match="empty"):
        triggered_and_clean(rows, "")
