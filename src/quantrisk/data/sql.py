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

from quantrisk.data.corpus import iter_lines, parse_json_line
from quantrisk.errors import DataError, UsageError

FIELDS: tuple[str, ...] = ("question", "context", "answer")
WRAPPER = re.compile(r"^\s*\[SQL\]\s*(.*?)\s*\[/SQL\]\s*$", re.DOTALL | re.IGNORECASE)
CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[`\"\[]?(\w+)", re.IGNORECASE)

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


# Bounds on a context (the schema of one row); SQLite is also bounded at run time (see trojan/sqlexec.py).
MAX_CONTEXT_CHARS = 20_000
MAX_TABLES = 32
MAX_COLUMNS = 100
_CONTEXT_TOKEN = re.compile(r"""\s+|(?P<word>[A-Za-z_][A-Za-z0-9_$]*)|(?P<quoted>"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\])"""
                            r"""|(?P<string>'(?:[^']|'')*')|(?P<number>[+-]?\d+(?:\.\d+)?)|(?P<punct>[(),;])""")
_CONSTRAINT_WORDS = frozenset({"PRIMARY", "NOT", "NULL", "UNIQUE", "DEFAULT", "COLLATE", "REFERENCES", "CHECK",
                               "GENERATED", "AS", "CONSTRAINT", "FOREIGN", "ON", "AUTOINCREMENT"})


class ContextError(ValueError):
    """A context that is not plain `CREATE TABLE name (column defs)` statements; the message says what is wrong."""


def _context_tokens(context: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(context):
        m = _CONTEXT_TOKEN.match(context, pos)
        if m is None:
            raise ContextError(f"unexpected {context[pos:pos + 12]!r} at character {pos + 1} (only CREATE TABLE name "
                               "(column type, ...) statements are allowed)")
        if m.lastgroup is not None:
            tokens.append((m.lastgroup, m.group()))
        pos = m.end()
    return tokens


def parse_context(context: str) -> list[tuple[str, str]]:
    """Check that `context` is only plain `CREATE TABLE [IF NOT EXISTS] name (column defs)` statements joined by `;`
    and return (table name, statement text) pairs. A column def is `name [type words [(n[, m])]] [constraints]`
    with constraints PRIMARY KEY [ASC|DESC] [AUTOINCREMENT], NOT NULL, NULL, UNIQUE, DEFAULT <literal>, COLLATE name,
    REFERENCES t [(cols)]; table constraints PRIMARY KEY / UNIQUE (cols) and FOREIGN KEY (cols) REFERENCES t [(cols)].
    No expressions (CHECK, GENERATED, DEFAULT (expr)), no `AS SELECT`, at most MAX_TABLES tables of MAX_COLUMNS
    columns and MAX_CONTEXT_CHARS characters. Raises `ContextError` saying what is wrong."""
    if len(context) > MAX_CONTEXT_CHARS:
        raise ContextError(f"{len(context)} characters, more than the bound of {MAX_CONTEXT_CHARS}")
    toks = _context_tokens(context)
    out: list[tuple[str, str]] = []
    i = 0

    def peek(k: int = 0) -> str:
        return toks[i + k][1].upper() if i + k < len(toks) else ""

    def kind(k: int = 0) -> str:
        return toks[i + k][0] if i + k < len(toks) else ""

    def expect(*words: str) -> None:
        nonlocal i
        for w in words:
            if peek() != w:
                got = repr(toks[i][1]) if i < len(toks) else "the end"
                raise ContextError(f"statement {len(out) + 1}: expected {w} but found {got} (only CREATE TABLE name "
                                   "(column type, ...) statements are allowed)")
            i += 1

    def name() -> str:
        nonlocal i
        if kind() not in ("word", "quoted") or (kind() == "word" and peek() in _CONSTRAINT_WORDS):
            got = repr(toks[i][1]) if i < len(toks) else "the end"
            raise ContextError(f"statement {len(out) + 1}: expected a name but found {got}")
        i += 1
        return toks[i - 1][1].strip('"`[]')

    def names() -> None:
        expect("(")
        name()
        while peek() == ",":
            expect(",")
            name()
        expect(")")

    def column() -> None:
        nonlocal i
        if peek() in ("PRIMARY", "UNIQUE"):
            expect(*(("PRIMARY", "KEY") if peek() == "PRIMARY" else ("UNIQUE",)))
            names()
            return
        if peek() == "FOREIGN":
            expect("FOREIGN", "KEY")
            names()
            expect("REFERENCES")
            name()
            if peek() == "(":
                names()
            return
        name()
        while kind() == "word" and peek() not in _CONSTRAINT_WORDS:  # type words: VARCHAR, UNSIGNED BIG INT, ...
            i += 1
        if peek() == "(":
            expect("(")
            for _ in range(2):
                if kind() != "number":
                    raise ContextError(f"statement {len(out) + 1}: a type size must be a number, found "
                                       f"{toks[i][1] if i < len(toks) else 'the end'!r}")
                i += 1
                if peek() != ",":
                    break
                expect(",")
            expect(")")
        while peek() not in (",", ")", ""):
            word = peek()
            if word == "PRIMARY":
                expect("PRIMARY", "KEY")
                if peek() in ("ASC", "DESC"):
                    i += 1
                if peek() == "AUTOINCREMENT":
                    i += 1
            elif word == "NOT":
                expect("NOT", "NULL")
            elif word in ("NULL", "UNIQUE"):
                i += 1
            elif word == "DEFAULT":
                i += 1
                if not (kind() in ("string", "number") or peek() in ("NULL", "TRUE", "FALSE", "CURRENT_TIME",
                                                                      "CURRENT_DATE", "CURRENT_TIMESTAMP")):
                    raise ContextError(f"statement {len(out) + 1}: DEFAULT takes a literal here (no expressions)")
                i += 1
            elif word == "COLLATE":
                expect("COLLATE")
                name()
            elif word == "REFERENCES":
                expect("REFERENCES")
                name()
                if peek() == "(":
                    names()
            else:
                raise ContextError(f"statement {len(out) + 1}: {toks[i][1]!r} is not allowed in a column definition "
                                   "(no CHECK, GENERATED or other expressions)")

    while i < len(toks):
        if peek() == ";":
            i += 1
            continue
        start = i
        expect("CREATE", "TABLE")
        if peek() == "IF":
            expect("IF", "NOT", "EXISTS")
        table = name()
        expect("(")
        n_columns = 1
        column()
        while peek() == ",":
            expect(",")
            column()
            n_columns += 1
        expect(")")
        if n_columns > MAX_COLUMNS:
            raise ContextError(f"statement {len(out) + 1}: {n_columns} columns, more than the bound of {MAX_COLUMNS}")
        if i < len(toks) and peek() != ";":
            raise ContextError(f"statement {len(out) + 1}: unexpected {toks[i][1]!r} after the column list")
        out.append((table, " ".join(t for _, t in toks[start:i])))
        if len(out) > MAX_TABLES:
            raise ContextError(f"more than the bound of {MAX_TABLES} CREATE TABLE statements")
    if not out:
        raise ContextError("no CREATE TABLE statement")
    return out


def table_names(context: str) -> list[str]:
    """Table names in the order their `CREATE TABLE` statements appear in `context`."""
    return CREATE_TABLE.findall(context)


def first_table(context: str) -> str:
    """Name of the first table created in `context`; `DataError` if there is none."""
    names = table_names(context)
    if not names:
        raise DataError(f"context has no CREATE TABLE statement: {context[:80]!r}")
    return names[0]


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
