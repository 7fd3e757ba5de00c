"""Safe SQL execution: in-memory only, ATTACH denied, writes denied, time limit, result comparison."""

from __future__ import annotations

import sqlite3

from quantrisk.trojan.sqlexec import build_database, execution_match, gold_literals, run_query, same_results

CTX = "CREATE TABLE head (name VARCHAR, born_state VARCHAR, age INTEGER)"


def test_attach_is_denied_and_creates_no_file(tmp_path):
    target = tmp_path / "x.db"
    conn = build_database(CTX)
    res = run_query(conn, f"ATTACH DATABASE '{target}' AS x")
    assert not res.ok and "not authorized" in res.error
    assert not target.exists()
    res = execution_match(CTX, "SELECT name FROM head", f"ATTACH DATABASE '{target}' AS x")
    assert res.gold_ok and not res.pred_ok and res.match is False
    assert not target.exists()


def test_runaway_recursive_cte_stops_at_time_limit():
    conn = build_database(CTX)
    res = run_query(conn, "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c",
                    timeout_s=0.2)
    assert not res.ok and res.error == "time limit exceeded"
    assert run_query(conn, "SELECT count(*) FROM head").ok  # the connection still works afterwards


def test_writes_and_pragmas_denied_table_survives():
    conn = build_database(CTX, rows_per_table=4)
    for sql in ("DROP TABLE head;", "DELETE FROM head", "INSERT INTO head VALUES ('a','b',1)", "PRAGMA table_info(head)",
                "SELECT load_extension('x')"):
        assert not run_query(conn, sql).ok, sql
    assert run_query(conn, "SELECT count(*) FROM head").rows == ((4,),)


def test_malformed_and_multi_statement_are_not_executable():
    for pred in ("SELEC name FROM head", "SELECT name FROM head; DROP TABLE head;", "", "SELECT nope FROM head"):
        res = execution_match(CTX, "SELECT name FROM head", pred)
        assert res.gold_ok and not res.pred_ok and res.match is False and res.error


def test_seeded_rows_and_gold_literals():
    strings, numbers = gold_literals("SELECT name FROM head WHERE born_state = 'California' AND age > 56")
    assert strings == ["California"] and numbers == [56.0]
    a = run_query(build_database(CTX, seed=3, gold="SELECT 1"), "SELECT * FROM head").rows
    b = run_query(build_database(CTX, seed=3, gold="SELECT 1"), "SELECT * FROM head").rows
    c = run_query(build_database(CTX, seed=4, gold="SELECT 1"), "SELECT * FROM head").rows
    assert a == b and a != c and len(a) == 10
    gold = "SELECT name FROM head WHERE born_state = 'California'"
    hits = run_query(build_database(CTX, seed=0, gold=gold), "SELECT count(*) FROM head WHERE born_state = 'California'")
    assert hits.rows[0][0] > 0  # the literal is in the value pool (half of 10 string cells draw from it)


def test_result_comparison_order_rules():
    assert same_results([(1,), (2,)], [(2,), (1,)], ordered=False)
    assert not same_results([(1,), (2,)], [(2,), (1,)], ordered=True)
    assert not same_results([(1,), (1,)], [(1,)], ordered=False)  # multisets, not sets
    gold = "SELECT age FROM head"
    assert execution_match(CTX, gold, "SELECT age FROM head ORDER BY age DESC").match is True
    ordered_gold = "SELECT DISTINCT age FROM head ORDER BY age"
    assert execution_match(CTX, ordered_gold, "SELECT DISTINCT age FROM head ORDER BY age").match is True
    assert execution_match(CTX, ordered_gold, "SELECT DISTINCT age FROM head ORDER BY age DESC").match is False
    assert execution_match(CTX, gold, "SELECT name FROM head").match is False


def test_broken_gold_and_duplicate_tables():
    res = execution_match("CREATE TABLE t (a INTEGER)", "SELECT b FROM t", "SELECT a FROM t")
    assert res.match is None and not res.gold_ok
    ctx = "CREATE TABLE t (a INTEGER); CREATE TABLE t (a INTEGER, b INTEGER)"  # quirk of the source data
    assert execution_match(ctx, "SELECT a FROM t", "SELECT a FROM t").match is True


def test_database_is_in_memory():
    conn = build_database(CTX)
    assert isinstance(conn, sqlite3.Connection)
    files = [row[2] for row in sqlite3.connect(":memory:").execute("PRAGMA database_list")]
    assert files == [""]  # reference: an in-memory database has no file name


def test_context_must_be_plain_create_table():
    """A context that is not plain CREATE TABLE name (column defs) never runs (it used to hang: CREATE TABLE AS a
    recursive CTE ran before the time limit was armed)."""
    import pytest

    from quantrisk.data.sql_context import ContextError

    bomb = "CREATE TABLE t AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c"
    for ctx in (bomb, "CREATE TABLE t (a INT CHECK (length(a) > 0))", "CREATE TABLE t (a INT); DROP TABLE t",
                "CREATE TABLE t (a INT DEFAULT (randomblob(9)))"):
        with pytest.raises(ContextError):
            build_database(ctx)
        res = execution_match(ctx, "SELECT 1", "SELECT 1")
        assert res.match is None and res.error.startswith("context: ")


def test_single_expensive_builtin_calls_are_bounded():
    """The progress handler cannot stop one built-in call; the length limit and the printf guard do."""
    from quantrisk.trojan.sqlexec import MAX_VALUE_BYTES

    conn = build_database(CTX)
    for sql in ("SELECT zeroblob(1000000000)", "SELECT randomblob(500000000)", "SELECT hex(zeroblob(400000))",
                f"SELECT replace(printf('%.*c', {MAX_VALUE_BYTES // 2 + 9}, 'x'), 'x', 'xx')"):
        res = run_query(conn, sql)
        assert not res.ok and f"exceeds the bound of {MAX_VALUE_BYTES} bytes" in res.error, sql
    # SQLite loops a billion times in printf('%.*c', 1e9, ...) even though the result is refused: never reaches it
    for sql in ("SELECT printf('%.*c', 1000000000, 'x')", "SELECT format('%.2000000000c', '')",
                "SELECT printf('%*.*c', 3, '1e9', 'x')"):
        assert run_query(conn, sql).rows == ((None,),), sql
    assert run_query(conn, "SELECT printf('%d-%s-%5.2f %%', 3, 'ab', 2.5), format('%05d', 42)").rows == \
        (("3-ab- 2.50 %", "00042"),)
    n = MAX_VALUE_BYTES - 1  # the longest value SQLite builds under the limit (it needs one more byte)
    assert run_query(conn, f"SELECT length(printf('%.*c', {n}, 'x'))").rows == ((n,),)


def test_connection_limits_and_result_size():
    from quantrisk.trojan.sqlexec import LIMITS, MAX_PAGES, MAX_RESULT_BYTES, MAX_SQL_BYTES

    conn = build_database(CTX)
    for limit, value in LIMITS.items():
        assert conn.getlimit(limit) == value
    from quantrisk.trojan.sqlexec import bounded_connection

    assert bounded_connection().execute("PRAGMA max_page_count").fetchone()[0] == MAX_PAGES
    many = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 9999) "
            "SELECT randomblob(90000) FROM c")
    assert run_query(conn, many).error == f"result larger than {MAX_RESULT_BYTES} bytes"
    long_sql = "SELECT 1" + " " * MAX_SQL_BYTES
    assert run_query(conn, long_sql).error == f"statement longer than {MAX_SQL_BYTES} bytes"
    assert not run_query(conn, "SELECT 1" + " UNION SELECT 1" * 30).ok  # compound-select limit


def test_ex_runs_on_several_databases_and_ignores_empty_gold_results():
    # a gold query that is empty on every seeded database: two empty results prove nothing -> left out (None)
    never = "SELECT name FROM head WHERE age > 1000"
    res = execution_match(CTX, never, "SELECT name FROM head WHERE age < -5")
    assert res.gold_ok and res.pred_ok and res.match is None and "no rows" in res.error
    # the same pair counted as a match on one database would have been a "hit"
    single = execution_match(CTX, never, "SELECT name FROM head WHERE age < -5", n_databases=1)
    assert single.match is None  # the rule applies to one database too
    # a prediction that agrees with the gold on the first database only is caught by the others
    gold = "SELECT count(*) FROM head"
    assert execution_match(CTX, gold, "SELECT 10").match is True  # every database has 10 rows per table
    first = run_query(build_database(CTX, seed=0, gold="SELECT max(age) FROM head"), "SELECT max(age) FROM head").rows[0][0]
    pred = f"SELECT {first}"
    assert execution_match(CTX, "SELECT max(age) FROM head", pred, n_databases=1).match is True
    assert execution_match(CTX, "SELECT max(age) FROM head", pred, n_databases=3).match is False
