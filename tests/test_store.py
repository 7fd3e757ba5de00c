"""Results store: one transaction per cell (all rows or none), clear errors on full / read-only stores."""

from __future__ import annotations

import pytest

from quantrisk.cells import Cell
from quantrisk.errors import QuantriskError, UsageError
from quantrisk.results import MetricRow, StudyResult
from quantrisk.store import Store, sha256_path


def _result(n_samples: int = 3, tag: str = "a") -> StudyResult:
    return StudyResult("fake", [MetricRow("auc", 0.75, {"attack": "loss"}, 0.7, 0.8), MetricRow("n", 3.0)],
                       [{"i": i, "text": tag * 10} for i in range(n_samples)], {}, {"seed": 1}, {"short": 2}, 1.5)


def test_write_and_read_back(tmp_path):
    cell = Cell("fake", {"i": 1}, (), "one")
    art = tmp_path / "a.txt"
    art.write_text("hello")
    res = _result()
    res.artifacts["file"] = str(art)
    with Store(tmp_path) as st:
        st.add_cells([cell])
        assert st.status(cell.id) == "pending"
        st.mark_running(cell.id, 1)
        st.write_result(cell.id, res)
        assert st.status(cell.id) == "done"
        rows = st.metrics()
        assert [(r["name"], r["value"], r["labels"], r["ci_low"], r["ci_high"]) for r in rows] == [
            ("auc", 0.75, {"attack": "loss"}, 0.7, 0.8), ("n", 3.0, {}, None, None)]
        assert [r for _, r in st.samples()] == res.samples
        assert st.artifacts(cell.id) == {"file": str(art)}
        assert st.conn.execute("SELECT sha256 FROM artifacts").fetchone()[0] == \
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256("hello")
        c = st.cells()[0]
        assert c["attempts"] == 1 and c["environment"] == {"seed": 1} and c["skipped"] == {"short": 2}
        # rewriting a cell replaces its rows
        st.write_result(cell.id, _result(1))
        assert len(list(st.samples())) == 1 and len(st.metrics()) == 2
        assert st.integrity_check() == "ok"
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_add_cells_keeps_existing_status(tmp_path):
    a, b = Cell("fake", {"i": 1}), Cell("fake", {"i": 2})
    with Store(tmp_path) as st:
        st.add_cells([a])
        st.write_result(a.id, _result())
        st.add_cells([a, b])
        assert st.statuses() == {a.id: "done", b.id: "pending"}


def test_disk_full_leaves_nothing_partial(tmp_path):
    a, b = Cell("fake", {"i": 1}), Cell("fake", {"i": 2})
    with Store(tmp_path) as st:
        st.add_cells([a, b])
        st.write_result(a.id, _result(2))
        pages = st.conn.execute("PRAGMA page_count").fetchone()[0]
        st.conn.execute(f"PRAGMA max_page_count={pages + 2}")  # the disk is (almost) full
        st.mark_running(b.id, 1)
        with pytest.raises(QuantriskError, match="disk is full; nothing of this cell was stored"):
            st.write_result(b.id, _result(2000, tag="b"))
        assert st.status(b.id) == "running"
        assert st.conn.execute("SELECT COUNT(*) FROM samples WHERE cell_id=?", (b.id,)).fetchone()[0] == 0
        assert st.conn.execute("SELECT COUNT(*) FROM metrics WHERE cell_id=?", (b.id,)).fetchone()[0] == 0
        assert len(list(st.samples())) == 2  # cell a untouched
        assert st.integrity_check() == "ok"


def test_read_only_store_is_a_clear_error(tmp_path):
    a = Cell("fake", {"i": 1})
    with Store(tmp_path) as st:
        st.add_cells([a])
        st.conn.execute("PRAGMA query_only=ON")
        with pytest.raises(QuantriskError, match="read-only"):
            st.write_result(a.id, _result())


def test_missing_and_corrupt_store(tmp_path):
    with pytest.raises(UsageError, match="no results store"):
        Store(tmp_path / "nope", create=False)
    bad = tmp_path / "bad" / "results.sqlite"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UsageError, match="not a quantrisk results store"):
        Store(bad)


def test_sha256_path_of_directory(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("1")
    h1 = sha256_path(tmp_path / "d")
    (tmp_path / "d" / "x").write_text("2")
    assert h1 != sha256_path(tmp_path / "d") and sha256_path(tmp_path / "none") is None


def test_latest_done_cell_is_the_last_finished_done_one(tmp_path):
    a, b, bad = Cell("summary", {"i": 1}), Cell("summary", {"i": 2}), Cell("summary", {"i": 3})
    with Store(tmp_path) as st:
        assert st.latest_done_cell("summary") is None
        st.add_cells([a, b, bad])
        st.write_result(b.id, _result())
        st.write_result(a.id, _result())
        st.conn.execute("UPDATE cells SET finished=? WHERE id=?", (100.0, a.id))
        st.conn.execute("UPDATE cells SET finished=? WHERE id=?", (200.0, b.id))
        st.mark_failed(bad.id, "boom")  # finished last, but failed
        assert st.latest_done_cell("summary")["id"] == b.id
        assert st.latest_done_cell("other") is None
