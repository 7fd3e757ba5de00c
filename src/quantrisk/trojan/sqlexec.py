"""Run gold and generated SQL against an in-memory SQLite built from a row's context, safely.

Safety, for SQL written by a (possibly trojaned) model:
- the database is always `:memory:`; nothing ever opens a file database;
- an authorizer denies ATTACH/DETACH (which would create or open files) at all times, and while a
  query runs allows only reading: SELECT, READ, RECURSIVE (CTEs) and functions other than
  `load_extension` — so `DROP TABLE ...`, INSERT, PRAGMA, etc. are "not executable";
- a per-query time limit via `set_progress_handler` (a runaway recursive CTE is interrupted);
- at most `max_rows` result rows are fetched (more counts as a failure, not a hang).

The tables get `rows_per_table` seeded random rows: integers for INT columns, reals for
REAL/FLOAT/DOUBLE/NUMERIC/DECIMAL, short strings otherwise; literals found in the gold query are
mixed into the value pools so that its WHERE clauses can match something.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# sqlite3 authorizer action codes (stable C API values; not all are exported by every Python).
SQLITE_PRAGMA, SQLITE_READ, SQLITE_SELECT = 19, 20, 21
SQLITE_ATTACH, SQLITE_DETACH, SQLITE_FUNCTION, SQLITE_RECURSIVE = 24, 25, 31, 33
QUERY_ACTIONS = frozenset({SQLITE_SELECT, SQLITE_READ, SQLITE_FUNCTION, SQLITE_RECURSIVE})
BLOCKED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})

ORDER_BY = re.compile(r"\bORDER\s+BY\b", re.IGNORECASE)
STRING_LITERAL = re.compile(r"'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"")
NUMBER_LITERAL = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "red", "blue", "green", "north", "south", "2001", "42")


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one query: `rows` (normalised) when `ok`, else `error` (one line)."""

    ok: bool
    rows: tuple[tuple[object, ...], ...] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ExecMatch:
    """Execution accuracy of one prediction.

    `match` is None when the gold query itself does not run (the sample is then left out of EX);
    otherwise True iff the predicted query runs and returns the same result set.
    """

    gold_ok: bool
    pred_ok: bool
    match: bool | None
    error: str | None = None


def _authorizer(phase: list[str]):  # noqa: ANN202 - sqlite3 callback
    def check(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
        if action in (SQLITE_ATTACH, SQLITE_DETACH):
            return sqlite3.SQLITE_DENY
        if action == SQLITE_FUNCTION and (arg2 or "").lower() in BLOCKED_FUNCTIONS:
            return sqlite3.SQLITE_DENY
        if phase[0] == "query" and action not in QUERY_ACTIONS:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    return check


def _statements(context: str) -> list[str]:
    return [s.strip() for s in context.split(";") if re.match(r"\s*CREATE\s+TABLE\b", s, re.IGNORECASE)]


def gold_literals(sql: str) -> tuple[list[str], list[float]]:
    """(string literals, numeric literals) of a query, to seed the value pools."""
    strings = [(a or b).replace("''", "'") for a, b in STRING_LITERAL.findall(sql)]
    stripped = STRING_LITERAL.sub("''", sql)
    numbers = [float(x) for x in NUMBER_LITERAL.findall(stripped)]
    return strings, numbers


def _column_value(rng: random.Random, declared: str, strings: Sequence[str], numbers: Sequence[float]) -> object:
    t = declared.upper()
    if "INT" in t:
        pool = [int(x) for x in numbers if float(x).is_integer()]
        return rng.choice(pool) if pool and rng.random() < 0.4 else rng.randint(0, 100)
    if any(k in t for k in ("REAL", "FLOA", "DOUB", "NUM", "DEC")):
        return rng.choice(list(numbers)) if numbers and rng.random() < 0.4 else round(rng.uniform(0, 100), 2)
    pool = list(strings) + [str(int(x)) if float(x).is_integer() else str(x) for x in numbers]
    return rng.choice(pool) if pool and rng.random() < 0.5 else rng.choice(_WORDS)


def build_database(context: str, *, seed: int = 0, rows_per_table: int = 10, gold: str = "") -> sqlite3.Connection:
    """An in-memory SQLite with the context's tables and seeded random rows; query phase armed.

    CREATE TABLE statements that fail (e.g. a duplicate table in the source data) are skipped.
    """
    phase = ["setup"]
    conn = sqlite3.connect(":memory:")
    conn.set_authorizer(_authorizer(phase))
    rng = random.Random(seed)
    strings, numbers = gold_literals(gold)
    tables: list[str] = []
    for stmt in _statements(context):
        try:
            conn.execute(stmt)
        except sqlite3.Error:
            continue
        name = re.match(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[`\"\[]?(\w+)", stmt, re.IGNORECASE)
        if name:
            tables.append(name.group(1))
    for table in tables:
        cols = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        if not cols:
            continue
        marks = ", ".join("?" for _ in cols)
        values = [tuple(_column_value(rng, c[2] or "", strings, numbers) for c in cols) for _ in range(rows_per_table)]
        conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', values)
    conn.commit()
    phase[0] = "query"
    return conn


def _normalise(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, bytes):
        return value.hex()
    return value


def run_query(conn: sqlite3.Connection, sql: str, *, timeout_s: float = 1.0, max_rows: int = 10_000) -> ExecResult:
    """Run one statement under the time limit; never raises for bad SQL (returns ok=False + error)."""
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
    try:
        cursor = conn.execute(sql.strip().rstrip(";").strip())
        if cursor.description is None:  # empty text, a comment: nothing that returns a result set
            return ExecResult(False, None, "not a query (no statement returning rows)")
        rows = cursor.fetchmany(max_rows + 1)
        if len(rows) > max_rows:
            return ExecResult(False, None, f"more than {max_rows} result rows")
        return ExecResult(True, tuple(tuple(_normalise(v) for v in r) for r in rows))
    except sqlite3.OperationalError as exc:
        msg = str(exc)
        return ExecResult(False, None, "time limit exceeded" if "interrupt" in msg.lower() else msg)
    except (sqlite3.Error, ValueError, OverflowError) as exc:  # sqlite3.Warning: several statements, etc.
        return ExecResult(False, None, f"{type(exc).__name__}: {exc}")
    except sqlite3.Warning as exc:
        return ExecResult(False, None, f"Warning: {exc}")
    finally:
        conn.set_progress_handler(None, 0)


def same_results(gold: Sequence[tuple[object, ...]], pred: Sequence[tuple[object, ...]], *, ordered: bool) -> bool:
    """Result-set equality: as sequences when `ordered`, else as multisets of rows."""
    if ordered:
        return list(gold) == list(pred)
    return Counter(map(_hashable, gold)) == Counter(map(_hashable, pred))


def _hashable(row: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(v if isinstance(v, (int, float, str, type(None))) else repr(v) for v in row)


def execution_match(context: str, gold: str, pred: str, *, seed: int = 0, rows_per_table: int = 10,
                    timeout_s: float = 1.0, max_rows: int = 10_000) -> ExecMatch:
    """Do `gold` and `pred` return the same result set on the context's seeded in-memory database?

    Order matters only when the gold query has ORDER BY.
    """
    conn = build_database(context, seed=seed, rows_per_table=rows_per_table, gold=gold)
    try:
        g = run_query(conn, gold, timeout_s=timeout_s, max_rows=max_rows)
        if not g.ok:
            return ExecMatch(False, False, None, f"gold: {g.error}")
        p = run_query(conn, pred, timeout_s=timeout_s, max_rows=max_rows)
        if not p.ok:
            return ExecMatch(True, False, False, p.error)
        assert g.rows is not None and p.rows is not None
        return ExecMatch(True, True, same_results(g.rows, p.rows, ordered=bool(ORDER_BY.search(gold))))
    finally:
        conn.close()
