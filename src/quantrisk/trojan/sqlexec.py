"""Run gold and generated SQL against an in-memory SQLite built from a row's context, safely.

Safety, for SQL written by a (possibly trojaned) model:
- the database is always `:memory:`; nothing ever opens a file database;
- an authorizer denies ATTACH/DETACH (which would create or open files) at all times, and while a
  query runs allows only reading: SELECT, READ, RECURSIVE (CTEs) and functions other than
  `load_extension` — so `DROP TABLE ...`, INSERT, PRAGMA, etc. are "not executable";
- the context must be plain `CREATE TABLE name (column defs)` statements (`data.sql_context.parse_context`; anything else
  is refused, and the statements run are rebuilt from the checked tokens);
- every statement (the context's CREATE TABLEs, the inserts, the gold and the generated query) runs under a time
  limit via `set_progress_handler`, checked every `PROGRESS_OPS` virtual-machine instructions;
- the progress handler cannot stop ONE expensive built-in call (`randomblob`, `zeroblob`, `printf('%.*c', ...)`,
  `replace`, `instr`, LIKE): those are bounded by `sqlite3.Connection.setlimit` instead (`LIMITS`: every string
  or blob at most `MAX_VALUE_BYTES`, so no single call can build more than that or scan more than that squared),
  and the database by `PRAGMA max_page_count` (`MAX_PAGES` pages); temporary tables live in memory;
- at most `max_rows` result rows and `MAX_RESULT_BYTES` bytes of values are fetched (more counts as a failure).

The tables get `rows_per_table` seeded random rows: integers for INT columns, reals for
REAL/FLOAT/DOUBLE/NUMERIC/DECIMAL, short strings otherwise; literals found in the gold query are
mixed into the value pools so that its WHERE clauses can match something.
"""

from __future__ import annotations

import contextlib
import random
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from quantrisk.data.sql_context import ContextError, parse_context

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


# Bounds of every connection (see the module doc and SECURITY.md). sqlite3 defaults in comments.
MAX_VALUE_BYTES = 100_000  # one string or blob (default 1,000,000,000)
MAX_SQL_BYTES = 100_000  # one SQL statement (default 1,000,000,000)
MAX_PAGES = 4096  # database pages of 4 KiB: 16 MiB (default 4,294,967,294)
MAX_RESULT_BYTES = 16 * 2**20  # values fetched from one query, summed
PROGRESS_OPS = 1000  # virtual-machine instructions between two time checks
LIMITS: dict[int, int] = {
    sqlite3.SQLITE_LIMIT_LENGTH: MAX_VALUE_BYTES,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: MAX_SQL_BYTES,
    sqlite3.SQLITE_LIMIT_COLUMN: 128,  # columns of a table, a result, an index, GROUP BY / ORDER BY terms (2,000)
    sqlite3.SQLITE_LIMIT_EXPR_DEPTH: 100,  # parse-tree depth (1,000)
    sqlite3.SQLITE_LIMIT_COMPOUND_SELECT: 20,  # terms of UNION / EXCEPT ... (500)
    sqlite3.SQLITE_LIMIT_VDBE_OP: 50_000,  # instructions of one compiled statement (250,000,000)
    sqlite3.SQLITE_LIMIT_FUNCTION_ARG: 16,  # arguments of a function (127)
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,  # attached databases (10)
    sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 1_000,  # LIKE / GLOB pattern bytes (50,000)
    sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER: 256,  # ?-parameters (32,766)
    sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH: 1,  # (1,000)
    sqlite3.SQLITE_LIMIT_WORKER_THREADS: 0,  # (0)
}


_PRINTF_SPEC = re.compile(r"%([-+ 0#,!]*)(\*|\d+)?(?:\.(\*|\d+))?(?:ll|l)?(.)", re.DOTALL)


def _printf_within_bounds(fmt: object, args: Sequence[object]) -> bool:
    """False when a width or precision of `fmt` (a literal or a `*` argument) exceeds `MAX_VALUE_BYTES`.

    SQLite's `printf('%.*c', 1000000000, 'x')` loops a billion times inside one call even though its result is
    refused by the length limit (8 s measured), so it must not reach SQLite at all."""
    if not isinstance(fmt, str):
        return True
    k = 0
    for _flags, width, precision, conv in _PRINTF_SPEC.findall(fmt):
        if conv == "%":
            continue
        for part in (width, precision):
            if part == "*":
                value = args[k] if k < len(args) else 0
                k += 1
                try:
                    if abs(int(float(value))) > MAX_VALUE_BYTES:  # type: ignore[arg-type]
                        return False
                except (TypeError, ValueError, OverflowError):
                    continue
            elif part and int(part) > MAX_VALUE_BYTES:
                return False
        k += 1
    return True


def bounded_connection() -> sqlite3.Connection:
    """A `:memory:` connection with `LIMITS` set, at most `MAX_PAGES` pages, temporary storage in memory, and
    `printf`/`format` refusing (returning NULL, as SQLite does for a too-big result) widths or precisions past
    `MAX_VALUE_BYTES` before SQLite's own printf (on a second bounded connection) sees them."""
    def limited(c: sqlite3.Connection) -> sqlite3.Connection:
        for limit, value in LIMITS.items():
            c.setlimit(limit, value)
        c.execute(f"PRAGMA max_page_count = {MAX_PAGES}")
        c.execute("PRAGMA temp_store = MEMORY")
        return c

    conn = limited(sqlite3.connect(":memory:"))
    helper = limited(sqlite3.connect(":memory:"))

    def printf(name: str):  # noqa: ANN202 - sqlite3 callback
        def call(fmt: object = None, *args: object) -> object:
            if not _printf_within_bounds(fmt, args):
                return None
            marks = ", ".join("?" for _ in range(1 + len(args)))
            return helper.execute(f"SELECT {name}({marks})", (fmt, *args)).fetchone()[0]

        return call

    for name in ("printf", "format"):
        conn.create_function(name, -1, printf(name), deterministic=True)
    return conn


def _arm(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Interrupt whatever runs on `conn` once `timeout_s` seconds have passed from now."""
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, PROGRESS_OPS)


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


def build_database(context: str, *, seed: int = 0, rows_per_table: int = 10, gold: str = "",
                   timeout_s: float = 1.0) -> sqlite3.Connection:
    """A bounded in-memory SQLite with the context's tables and seeded random rows; query phase armed.

    `context` must pass `data.sql_context.parse_context` (else `ContextError`). CREATE TABLE statements that fail (e.g. a
    duplicate table in the source data) are skipped. The whole setup runs under the `timeout_s` limit
    (`sqlite3.OperationalError` "interrupted" past it).
    """
    tables_sql = parse_context(context)
    phase = ["setup"]
    conn = bounded_connection()
    conn.set_authorizer(_authorizer(phase))
    rng = random.Random(seed)
    strings, numbers = gold_literals(gold[:MAX_SQL_BYTES])
    tables: list[str] = []
    _arm(conn, timeout_s)
    try:
        for name, stmt in tables_sql:
            try:
                conn.execute(stmt)
            except sqlite3.OperationalError as exc:
                if "interrupt" in str(exc).lower():
                    raise
                continue
            except sqlite3.Error:
                continue
            tables.append(name)
        for table in tables:
            cols = conn.execute('PRAGMA table_info("{}")'.format(table.replace('"', '""'))).fetchall()
            if not cols:
                continue
            marks = ", ".join("?" for _ in cols)
            values = [tuple(_column_value(rng, c[2] or "", strings, numbers) for c in cols)
                      for _ in range(rows_per_table)]
            conn.executemany('INSERT INTO "{}" VALUES ({})'.format(table.replace('"', '""'), marks), values)
        conn.commit()
    except BaseException:
        conn.close()
        raise
    finally:
        with contextlib.suppress(sqlite3.ProgrammingError):
            conn.set_progress_handler(None, 0)
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
    if len(sql.encode("utf-8", "surrogatepass")) > MAX_SQL_BYTES:
        return ExecResult(False, None, f"statement longer than {MAX_SQL_BYTES} bytes")
    _arm(conn, timeout_s)
    try:
        cursor = conn.execute(sql.strip().rstrip(";").strip())
        if cursor.description is None:  # empty text, a comment: nothing that returns a result set
            return ExecResult(False, None, "not a query (no statement returning rows)")
        rows: list[tuple[object, ...]] = []
        size = 0
        while len(rows) <= max_rows:
            chunk = cursor.fetchmany(min(256, max_rows + 1 - len(rows)))
            if not chunk:
                break
            rows.extend(chunk)
            size += sum(len(v) if isinstance(v, (str, bytes)) else 8 for r in chunk for v in r)
            if size > MAX_RESULT_BYTES:
                return ExecResult(False, None, f"result larger than {MAX_RESULT_BYTES} bytes")
        if len(rows) > max_rows:
            return ExecResult(False, None, f"more than {max_rows} result rows")
        return ExecResult(True, tuple(tuple(_normalise(v) for v in r) for r in rows))
    except sqlite3.OperationalError as exc:
        msg = str(exc)
        return ExecResult(False, None, "time limit exceeded" if "interrupt" in msg.lower() else msg)
    except sqlite3.DataError as exc:  # a value past MAX_VALUE_BYTES: "string or blob too big"
        return ExecResult(False, None, f"a value exceeds the bound of {MAX_VALUE_BYTES} bytes ({exc})")
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


N_DATABASES = 3


def execution_match(context: str, gold: str, pred: str, *, seed: int = 0, rows_per_table: int = 10,
                    timeout_s: float = 1.0, max_rows: int = 10_000, n_databases: int = N_DATABASES) -> ExecMatch:
    """Do `gold` and `pred` return the same result set on the context's seeded in-memory databases?

    The query pair runs on `n_databases` databases (seeds `seed`, `seed + 1`, ...; a small test suite in the sense
    of Zhong et al. 2020) and matches only if the results agree on every one. Order matters only when the gold
    query has ORDER BY. Two empty results prove nothing: when the gold query returns no rows on any of the
    databases, `match` is None (the sample is left out of EX, like a gold query that does not run) and `error`
    says why.
    """
    gold_rows = 0
    for k in range(max(1, n_databases)):
        one = _run_pair(context, gold, pred, seed + k, rows_per_table, timeout_s, max_rows)
        if isinstance(one, ExecMatch):
            return one
        g, p = one
        if not p.ok:
            return ExecMatch(True, False, False, p.error)
        assert g.rows is not None and p.rows is not None
        gold_rows = max(gold_rows, len(g.rows))
        if not same_results(g.rows, p.rows, ordered=bool(ORDER_BY.search(gold))):
            return ExecMatch(True, True, False)
    if gold_rows == 0:
        return ExecMatch(True, True, None, f"gold returns no rows on any of {max(1, n_databases)} databases")
    return ExecMatch(True, True, True)


def _run_pair(context: str, gold: str, pred: str, seed: int, rows_per_table: int, timeout_s: float,
              max_rows: int) -> ExecMatch | tuple[ExecResult, ExecResult]:
    """Gold and prediction on one seeded database: their results, or the final ExecMatch when the database or the
    gold query fails."""
    try:
        conn = build_database(context, seed=seed, rows_per_table=rows_per_table, gold=gold, timeout_s=timeout_s)
    except ContextError as exc:
        return ExecMatch(False, False, None, f"context: {exc}")
    except sqlite3.Error as exc:
        why = "time limit exceeded" if "interrupt" in str(exc).lower() else str(exc)
        return ExecMatch(False, False, None, f"context: {why}")
    try:
        g = run_query(conn, gold, timeout_s=timeout_s, max_rows=max_rows)
        if not g.ok:
            return ExecMatch(False, False, None, f"gold: {g.error}")
        return g, run_query(conn, pred, timeout_s=timeout_s, max_rows=max_rows)
    finally:
        conn.close()
