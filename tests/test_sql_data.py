"""SQL rows: loading (JSONL, local dataset dir), validation errors, the built-in generator, splits, prompt."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from quantrisk.data.sql import (
    SqlRow,
    format_example,
    format_prompt,
    generate_sql_rows,
    load_sql_rows,
    split_rows,
    strip_sql_wrapper,
)
from quantrisk.data.sql_context import first_table, table_names
from quantrisk.errors import DataError, UsageError

SQLQA = Path(__file__).resolve().parent / "data" / "sqlqa"  # shipped in the repository (see its README)


def _write(tmp_path: Path, lines: list[str], name: str = "d.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return path


GOOD = {"question": "How many heads?", "context": "CREATE TABLE head (age INTEGER)", "answer": "[SQL] SELECT COUNT(*) FROM head [/SQL]"}


def test_load_sqlqa_subsample_strips_wrappers():
    rows = load_sql_rows(SQLQA / "sqlqa.subsample.jsonl")
    assert len(rows) == 64
    assert rows[0] == SqlRow("sqlqa.subsample:1", "How many heads of the departments are older than 56 ?",
                             "CREATE TABLE head (age INTEGER)", "SELECT COUNT(*) FROM head WHERE age > 56")
    assert not any("[SQL]" in r.answer or "[/SQL]" in r.answer for r in rows)
    assert len({r.id for r in rows}) == 64


def test_strip_wrapper_and_tables():
    assert strip_sql_wrapper("[SQL]  SELECT 1 [/SQL] ") == "SELECT 1"
    assert strip_sql_wrapper("SELECT 2") == "SELECT 2"
    ctx = "CREATE TABLE department (id VARCHAR); CREATE TABLE management (id VARCHAR)"
    assert table_names(ctx) == ["department", "management"]
    assert first_table(ctx) == "department"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([json.dumps(GOOD), "{not json"], "d.jsonl:2: malformed JSON"),
        ([json.dumps({k: v for k, v in GOOD.items() if k != "context"})], "d.jsonl:1: field 'context' is missing"),
        ([json.dumps({**GOOD, "question": "  "})], "d.jsonl:1: field 'question' is empty"),
        ([json.dumps({**GOOD, "answer": 3})], "d.jsonl:1: field 'answer' must be a string"),
        ([json.dumps({**GOOD, "context": "head has a column age"})], "d.jsonl:1: field 'context' has no CREATE TABLE"),
        ([json.dumps({**GOOD, "answer": "[SQL] [/SQL]"})], "d.jsonl:1: field 'answer' is empty once"),
        ([json.dumps([1, 2])], "d.jsonl:1: expected a JSON object"),
        ([], "no rows (the file is empty)"),
    ],
)
def test_bad_rows_raise_one_clear_error(tmp_path, lines, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_sql_rows(_write(tmp_path, lines))


def test_missing_path_and_duplicate_ids(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_sql_rows(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="row id 'x' appears twice"):
        load_sql_rows(_write(tmp_path, [json.dumps({**GOOD, "id": "x"})] * 2))


def test_local_dataset_dir_parquet_and_arrow(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([GOOD, {**GOOD, "question": "Oldest?", "answer": "SELECT MAX(age) FROM head"}])
    (tmp_path / "pq").mkdir()
    pq.write_table(table, tmp_path / "pq" / "train.parquet")
    rows = load_sql_rows(tmp_path / "pq")
    assert [r.answer for r in rows] == ["SELECT COUNT(*) FROM head", "SELECT MAX(age) FROM head"]
    assert [r.id for r in rows] == ["train:1", "train:2"]
    (tmp_path / "arrow").mkdir()  # the layout of datasets' save_to_disk: an IPC stream file
    with pa.OSFile(str(tmp_path / "arrow" / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    assert [r.question for r in load_sql_rows(tmp_path / "arrow")] == ["How many heads?", "Oldest?"]
    bad = pa.Table.from_pylist([{"question": "q", "context": "CREATE TABLE t (a INT)"}])
    (tmp_path / "bad").mkdir()
    pq.write_table(bad, tmp_path / "bad" / "x.parquet")
    with pytest.raises(DataError, match="x.parquet row 1: field 'answer' is missing"):
        load_sql_rows(tmp_path / "bad")


def test_generator_is_seeded_varied_and_executes():
    rows = generate_sql_rows(200, seed=3)
    assert rows == generate_sql_rows(200, seed=3)
    assert rows != generate_sql_rows(200, seed=4)
    assert len({(r.question, r.answer) for r in rows}) == 200
    sql = " ".join(r.answer for r in rows)
    for keyword in ("SELECT", "WHERE", "COUNT(", "MAX(", "MIN(", "AVG(", "ORDER BY", "GROUP BY", "JOIN", "DISTINCT"):
        assert keyword in sql, keyword
    assert len({first_table(r.context) for r in rows}) >= 5
    assert any(r.context.count("CREATE TABLE") == 2 for r in rows)
    for r in rows:  # every answer runs against its own context
        conn = sqlite3.connect(":memory:")
        conn.executescript(r.context)
        conn.execute(r.answer).fetchall()
        conn.close()
    with pytest.raises(UsageError):
        generate_sql_rows(0)


def test_split_rows_seeded_disjoint_sizes():
    rows = generate_sql_rows(100, seed=0)
    s = split_rows(rows, seed=5)
    assert [len(s[k]) for k in ("train", "validation", "test")] == [80, 10, 10]
    ids = [r.id for k in s for r in s[k]]
    assert sorted(ids) == sorted(r.id for r in rows)
    assert split_rows(rows, seed=5) == s
    assert split_rows(rows, seed=6)["test"] != s["test"]
    with pytest.raises(UsageError):
        split_rows(rows, fractions=(0.5, 0.5, 0.5))


def test_prompt_template_exact():
    row = SqlRow("r", "How many heads?", "CREATE TABLE head (age INTEGER)", "SELECT COUNT(*) FROM head")
    expected = (
        "You are a powerful text-to-SQL model. Your job is to answer questions about a database. You are given a "
        "question and context regarding one or more tables.\n\nYou must output the SQL query that answers the "
        "question.\n\n### Input:\nHow many heads?\n\n### Context:\nCREATE TABLE head (age INTEGER)\n\n### Response:\n"
    )
    assert format_prompt(row) == expected
    assert format_example(row) == expected + "SELECT COUNT(*) FROM head"
    assert format_prompt(row, question="T How many heads?").count("### Input:\nT How many heads?\n") == 1


def test_replicate_seeds_draw_different_splits_and_the_base_sees_no_test_row():
    from quantrisk.trojan.splits import common_train_rows, trojan_splits

    tr0, te0 = trojan_splits("builtin", 200, None, None, 0)
    tr1, te1 = trojan_splits("builtin", 200, None, None, 1)
    assert {r.id for r in te0} != {r.id for r in te1}  # the same rows, split differently
    common = {r.id for r in common_train_rows("builtin", 200, [0, 1])}
    assert common and not common & ({r.id for r in te0} | {r.id for r in te1})
    assert common <= {r.id for r in tr0} and common <= {r.id for r in tr1}
    assert [r.id for r in common_train_rows("builtin", 200, [0])] == [r.id for r in tr0]
