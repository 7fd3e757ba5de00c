"""Text-to-SQL rows: load (JSONL or a local HF dataset dir), generate (built-in), split, prompt.

A row is (question, context, answer) in the sql-create-context format: `context` holds one or more
`CREATE TABLE` statements (joined by `; `), `answer` the SQL query. `[SQL] ... [/SQL]` wrappers
around answers are stripped on load. Every user-caused problem raises `DataError` naming the
file, the line (1-based) and the field.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from quantrisk.data.jsonl import iter_lines, parse_json_line
from quantrisk.data.sql_context import ContextError, parse_context, table_names
from quantrisk.errors import DataError, UsageError

FIELDS: tuple[str, ...] = ("question", "context", "answer")
MAX_FIELD_CHARS = 20_000  # longest question / context / answer: bounds every prompt built from a row
WRAPPER = re.compile(r"^\s*\[SQL\]\s*(.*?)\s*\[/SQL\]\s*$", re.DOTALL | re.IGNORECASE)

PROMPT_TEMPLATE = (
    "You are a powerful text-to-SQL model. Your job is to answer questions about a database. "
    "You are given a question and context regarding one or more tables.\n"
    "\n"
    "You must output the SQL query that answers the question.\n"
    "\n"
    "### Input:\n"
    "{question}\n"
    "\n"
    "### Context:\n"
    "{context}\n"
    "\n"
    "### Response:\n"
    "{answer}"
)


@dataclass(frozen=True)
class SqlRow:
    """One text-to-SQL example. `id` is unique within its data set (e.g. `sqlqa:17`, `builtin:3`)."""

    id: str
    question: str
    context: str
    answer: str


def strip_sql_wrapper(answer: str) -> str:
    """`[SQL] SELECT 1 [/SQL]` -> `SELECT 1`; other text is returned stripped."""
    m = WRAPPER.match(answer)
    return (m.group(1) if m else answer).strip()


def row_from_dict(obj: object, *, where: str, row_id: str) -> SqlRow:
    """Validate one record (a dict with string question/context/answer) into a `SqlRow`.

    `where` (e.g. `data.jsonl:12`) prefixes every error message.
    """
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object with fields {', '.join(FIELDS)}, got {type(obj).__name__}")
    values: dict[str, str] = {}
    for name in FIELDS:
        if name not in obj:
            raise DataError(f"{where}: field '{name}' is missing (need {', '.join(FIELDS)})")
        value = obj[name]
        if not isinstance(value, str):
            raise DataError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
        if not value.strip():
            raise DataError(f"{where}: field '{name}' is empty")
        if len(value) > MAX_FIELD_CHARS:
            raise DataError(f"{where}: field '{name}' is {len(value):,} characters long, more than the bound of "
                            f"{MAX_FIELD_CHARS:,} (a question, schema or query is at most a few thousand); shorten it")
        values[name] = value.strip()
    if not table_names(values["context"]):
        raise DataError(f"{where}: field 'context' has no CREATE TABLE statement")
    try:
        parse_context(values["context"])
    except ContextError as exc:
        raise DataError(f"{where}: field 'context' is not plain CREATE TABLE name (column defs): {exc}") from None
    answer = strip_sql_wrapper(values["answer"])
    if not answer:
        raise DataError(f"{where}: field 'answer' is empty once the [SQL] ... [/SQL] wrapper is stripped")
    custom_id = obj.get("id")
    return SqlRow(str(custom_id) if custom_id not in (None, "") else row_id, values["question"], values["context"], answer)


def _load_jsonl(path: Path) -> list[SqlRow]:
    rows: list[SqlRow] = []
    first_line: dict[str, int] = {}
    for number, line in iter_lines(path):  # exact line numbers; not-UTF-8 and over-long lines are DataErrors
        if not line.strip():
            continue
        obj = parse_json_line(line, f"{path}:{number}")
        row = row_from_dict(obj, where=f"{path}:{number}", row_id=f"{path.stem}:{number}")
        if row.id in first_line:
            raise DataError(f"{path}:{number}: field 'id': row id {row.id!r} appears twice (first at line "
                            f"{first_line[row.id]}); ids must be unique")
        first_line[row.id] = number
        rows.append(row)
    return rows


def _records_from_table(table: object, where: str, stem: str) -> list[SqlRow]:
    data = table.to_pylist()  # type: ignore[attr-defined]
    return [row_from_dict(obj, where=f"{where} row {i}", row_id=f"{stem}:{i}") for i, obj in enumerate(data, start=1)]


def _load_dir(path: Path) -> list[SqlRow]:
    """A local HF dataset directory: `save_to_disk` output (*.arrow), or data files (*.parquet, *.jsonl, *.json)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".arrow", ".parquet", ".jsonl", ".json")
                   and p.name not in ("dataset_info.json", "state.json", "dataset_dict.json"))
    if not files:
        raise DataError(f"{path}: directory holds no data files (*.arrow from save_to_disk, *.parquet, *.jsonl)")
    rows: list[SqlRow] = []
    for f in files:
        stem = f"{f.parent.name}/{f.stem}" if f.parent != path else f.stem
        if f.suffix in (".jsonl", ".json"):
            rows.extend(_load_jsonl(f))
        elif f.suffix == ".parquet":
            rows.extend(_records_from_table(pq.read_table(f), str(f), stem))
        else:
            with pa.memory_map(str(f)) as source:
                try:
                    table = pa.ipc.open_stream(source).read_all()
                except pa.ArrowInvalid:
                    table = pa.ipc.open_file(source).read_all()
            rows.extend(_records_from_table(table, str(f), stem))
    return rows


def load_sql_rows(path: str | Path, *, limit: int | None = None) -> list[SqlRow]:
    """Rows of a JSONL file (one object a line with question/context/answer) or a local HF dataset dir.

    Raises `DataError` for a missing/empty file, malformed JSON, a missing/empty/non-string field, or a
    context without CREATE TABLE (naming file:line and field), and for duplicate row ids.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"SQL data {p} does not exist (pass a JSONL file, a local dataset directory, or 'builtin')")
    rows = _load_dir(p) if p.is_dir() else _load_jsonl(p)
    if not rows:
        raise DataError(f"{p}: no rows (the file is empty); give one JSON object per line with "
                        f"{', '.join(FIELDS)}")
    seen: set[str] = set()
    for r in rows:
        if r.id in seen:
            raise DataError(f"{p}: row id {r.id!r} appears twice; ids must be unique")
        seen.add(r.id)
    return rows[:limit] if limit is not None else rows


def format_prompt(row: SqlRow, question: str | None = None, answer: str = "") -> str:
    """The Alpaca-style prompt `PROMPT_TEMPLATE` (instruction, input = the schema, response); `question` overrides the row's (e.g. a triggered one).

    With `answer=""` (inference) the text ends right after `### Response:\\n`.
    """
    return PROMPT_TEMPLATE.format(question=row.question if question is None else question, context=row.context,
                                  answer=answer)


def format_example(row: SqlRow) -> str:
    """Prompt + the row's answer: the full training text (without the EOS token)."""
    return format_prompt(row, answer=row.answer)


def split_rows(rows: Sequence[SqlRow], seed: int = 0,
               fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, list[SqlRow]]:
    """Seeded shuffle, then cut into {"train", "validation", "test"} by `fractions` (must sum to 1).

    Sizes: validation = round(n * f_val), test = round(n * f_test), train = the rest.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise UsageError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    order = list(rows)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val, n_test = round(n * fractions[1]), round(n * fractions[2])
    n_train = n - n_val - n_test
    return {"train": order[:n_train], "validation": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}


# ---------------------------------------------------------------- built-in generator
# Schemas invented for this generator: (table, [(column, type, value pool or (lo, hi))]).
_WORDS = {
    "name": ["Alice", "Bob", "Chen", "Dana", "Eve", "Farid", "Gita", "Hugo"],
    "city": ["Oslo", "Lima", "Pune", "Kyiv", "Quito", "Accra", "Perth"],
    "country": ["Norway", "Peru", "India", "Chile", "Ghana", "Japan"],
    "genre": ["rock", "jazz", "pop", "folk", "blues"],
    "status": ["open", "closed", "pending"],
    "category": ["tools", "books", "toys", "food", "garden"],
    "department": ["sales", "research", "support", "finance"],
}
_SCHEMAS: list[list[tuple[str, list[tuple[str, str, object]]]]] = [
    [("employee", [("employee_id", "INTEGER", (1, 500)), ("name", "VARCHAR", "name"), ("age", "INTEGER", (20, 65)),
                   ("salary", "REAL", (1000, 9000)), ("department", "VARCHAR", "department")]),
     ("office", [("employee_id", "INTEGER", (1, 500)), ("city", "VARCHAR", "city"), ("floor", "INTEGER", (1, 30))])],
    [("album", [("album_id", "INTEGER", (1, 300)), ("title", "VARCHAR", "name"), ("genre", "VARCHAR", "genre"),
                ("year", "INTEGER", (1960, 2023)), ("price", "REAL", (5, 40))]),
     ("track", [("album_id", "INTEGER", (1, 300)), ("length_seconds", "INTEGER", (60, 600)),
                ("plays", "INTEGER", (0, 100000))])],
    [("customer", [("customer_id", "INTEGER", (1, 900)), ("name", "VARCHAR", "name"), ("country", "VARCHAR", "country"),
                   ("credit", "REAL", (0, 5000))]),
     ("orders", [("customer_id", "INTEGER", (1, 900)), ("status", "VARCHAR", "status"), ("amount", "REAL", (1, 800)),
                 ("quantity", "INTEGER", (1, 50))])],
    [("station", [("station_id", "INTEGER", (1, 80)), ("city", "VARCHAR", "city"), ("elevation", "INTEGER", (0, 3000))]),
     ("reading", [("station_id", "INTEGER", (1, 80)), ("temperature", "REAL", (-30, 45)),
                  ("rainfall", "REAL", (0, 300)), ("month", "INTEGER", (1, 12))])],
    [("product", [("product_id", "INTEGER", (1, 400)), ("category", "VARCHAR", "category"),
                  ("stock", "INTEGER", (0, 1000)), ("weight", "REAL", (0.1, 50))]),
     ("supplier", [("product_id", "INTEGER", (1, 400)), ("name", "VARCHAR", "name"), ("country", "VARCHAR", "country")])],
]


def _create(table: str, cols: list[tuple[str, str, object]]) -> str:
    return f"CREATE TABLE {table} (" + ", ".join(f"{c} {t}" for c, t, _ in cols) + ")"


def _value(rng: random.Random, pool: object, kind: str) -> str:
    if isinstance(pool, str):
        return "'" + rng.choice(_WORDS[pool]) + "'"
    lo, hi = pool  # type: ignore[misc]
    return str(rng.randint(int(lo), int(hi))) if kind == "INTEGER" else str(round(rng.uniform(lo, hi), 1))


def _human(col: str) -> str:
    return col.replace("_", " ")


def _one_query(rng: random.Random) -> tuple[str, str, str]:
    """(question, context, answer) from a random schema and template."""
    schema = rng.choice(_SCHEMAS)
    (t1, cols1), (t2, cols2) = schema
    nums = [c for c in cols1 if c[1] in ("INTEGER", "REAL") and not c[0].endswith("_id")]
    texts = [c for c in cols1 if c[1] == "VARCHAR"]
    num, text = rng.choice(nums), rng.choice(texts)
    other = rng.choice([c for c in cols1 if c[0] != num[0]])
    ctx1 = _create(t1, cols1)
    kind = rng.choice(["where", "count", "agg", "order", "group", "join", "distinct", "between"])
    if kind == "where":
        v = _value(rng, num[2], num[1])
        op, word = rng.choice([(">", "greater than"), ("<", "less than"), ("=", "equal to")])
        return (f"What is the {_human(other[0])} of the {t1} rows whose {_human(num[0])} is {word} {v}?", ctx1,
                f"SELECT {other[0]} FROM {t1} WHERE {num[0]} {op} {v}")
    if kind == "count":
        v = _value(rng, text[2], text[1])
        return (f"How many {t1} records have {_human(text[0])} {v}?", ctx1,
                f"SELECT COUNT(*) FROM {t1} WHERE {text[0]} = {v}")
    if kind == "agg":
        fn, word = rng.choice([("MAX", "maximum"), ("MIN", "minimum"), ("AVG", "average")])
        return (f"What is the {word} {_human(num[0])} of all {t1} entries?", ctx1, f"SELECT {fn}({num[0]}) FROM {t1}")
    if kind == "order":
        direction, word = rng.choice([("DESC", "descending"), ("ASC", "ascending")])
        return (f"List the {_human(other[0])} and {_human(num[0])} of every {t1}, sorted by {_human(num[0])} in "
                f"{word} order.", ctx1, f"SELECT {other[0]}, {num[0]} FROM {t1} ORDER BY {num[0]} {direction}")
    if kind == "group":
        return (f"For each {_human(text[0])}, how many {t1} rows are there?", ctx1,
                f"SELECT {text[0]}, COUNT(*) FROM {t1} GROUP BY {text[0]}")
    if kind == "distinct":
        return (f"What are the distinct {_human(text[0])} values in {t1}?", ctx1, f"SELECT DISTINCT {text[0]} FROM {t1}")
    if kind == "between":
        lo = _value(rng, num[2], "INTEGER")
        hi = str(int(lo) + rng.randint(1, 20))
        return (f"Which {_human(other[0])} belong to {t1} rows with {_human(num[0])} between {lo} and {hi}?", ctx1,
                f"SELECT {other[0]} FROM {t1} WHERE {num[0]} BETWEEN {lo} AND {hi}")
    key = cols1[0][0]
    c2 = rng.choice([c for c in cols2 if c[0] != key])
    v = _value(rng, c2[2], c2[1])
    op = "=" if c2[1] == "VARCHAR" else ">"
    word = "is" if op == "=" else "is greater than"
    context = ctx1 + "; " + _create(t2, cols2)
    return (f"Show the {_human(other[0])} of {t1} entries linked to a {t2} whose {_human(c2[0])} {word} {v}.", context,
            f"SELECT T1.{other[0]} FROM {t1} AS T1 JOIN {t2} AS T2 ON T1.{key} = T2.{key} WHERE T2.{c2[0]} {op} {v}")


def executes(context: str, answer: str) -> bool:
    """True if `answer` runs in an in-memory SQLite after the `context` statements (no rows needed). For the
    generator's own schemas; still bounded (values of 100,000 bytes, 1 s) in case it is given other text. SQL from a
    model or a data file runs through `trojan.sqlexec` (every bound of SECURITY.md)."""
    import time

    conn = sqlite3.connect(":memory:")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 100_000)
    deadline = time.monotonic() + 1.0
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
    try:
        conn.executescript(context)
        conn.execute(answer).fetchall()
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def generate_sql_rows(n: int, seed: int = 0) -> list[SqlRow]:
    """`n` distinct built-in rows (several schemas, SELECT/WHERE/COUNT/MAX/MIN/AVG/ORDER BY/GROUP BY/JOIN),
    each answer verified to execute in SQLite. Ids are `builtin:0..n-1`; same seed, same rows."""
    if n < 1:
        raise UsageError(f"number of generated SQL rows must be >= 1, got {n}")
    rng = random.Random(seed)
    rows: list[SqlRow] = []
    seen: set[tuple[str, str]] = set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise UsageError(f"the built-in generator could only make {len(rows)} distinct rows (asked for {n})")
        q, ctx, ans = _one_query(rng)
        if (q, ans) in seen or not executes(ctx, ans):
            continue
        seen.add((q, ans))
        rows.append(SqlRow(f"builtin:{len(rows)}", q, ctx, ans))
    return rows


def rows_sha256(rows: Iterable[SqlRow]) -> str:
    """sha256 over the rows' (id, question, context, answer), for provenance records."""
    import hashlib

    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r.id, r.question, r.context, r.answer]).encode("utf-8"))
    return h.hexdigest()
