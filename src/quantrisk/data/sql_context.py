"""The `context` of a text-to-SQL row: its `CREATE TABLE` statements, checked and bounded before SQLite sees them.

`parse_context` accepts only plain `CREATE TABLE name (column defs)` statements (no expressions, bounded
size) and raises `ContextError` otherwise; `table_names` / `first_table` read the created tables' names.
"""

from __future__ import annotations

import re

from quantrisk.errors import DataError

CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[`\"\[]?(\w+)", re.IGNORECASE)

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
