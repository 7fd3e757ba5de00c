"""The results store: one SQLite file (`results.sqlite`, WAL journal) in the run directory.

Tables
    runs       one row per `quantrisk run` invocation: spec, its sha256, environment, start/finish, counts
    cells      id (content hash), kind, label, params/deps JSON, status (pending | running | done | failed),
               attempts, started/finished (unix s), seconds (all attempts: interrupted ones through heartbeats),
               environment JSON, skipped JSON, error
    metrics    cell_id, name, value, ci_low, ci_high, labels JSON
    samples    cell_id, idx, row JSON (per-sample rows)
    artifacts  cell_id, name, path, sha256

One writer (the driver process); `Store(..., create=False)` opens read-only (report, status, export never write
the file, and refuse one that is not a results store). A cell's results and its `done` status commit in ONE transaction, so
after a crash (even `kill -9`) a cell is either fully stored or not at all; cells left `running` by a
crash are run again. A full disk or a read-only file raises `QuantriskError` and rolls back.
"""

from __future__ import annotations

import errno
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quantrisk.cells import Cell
from quantrisk.errors import QuantriskError, UsageError
from quantrisk.results import MetricRow, StudyResult
from quantrisk.safefs import refuse_link

STORE_NAME = "results.sqlite"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, spec_name TEXT NOT NULL, spec_json TEXT NOT NULL, spec_sha256 TEXT NOT NULL,
    environment TEXT NOT NULL, executor TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    n_cells INTEGER, n_skipped INTEGER, n_run INTEGER, n_failed INTEGER);
CREATE TABLE IF NOT EXISTS cells (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL, params TEXT NOT NULL, deps TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, run_id INTEGER, started REAL, finished REAL, seconds REAL,
    environment TEXT, skipped TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS metrics (
    cell_id TEXT NOT NULL REFERENCES cells(id), name TEXT NOT NULL, value REAL NOT NULL,
    ci_low REAL, ci_high REAL, labels TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    cell_id TEXT NOT NULL REFERENCES cells(id), idx INTEGER NOT NULL, row TEXT NOT NULL, PRIMARY KEY (cell_id, idx));
CREATE TABLE IF NOT EXISTS artifacts (
    cell_id TEXT NOT NULL REFERENCES cells(id), name TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT,
    PRIMARY KEY (cell_id, name));
CREATE INDEX IF NOT EXISTS metrics_cell ON metrics(cell_id);
"""


TABLES = frozenset({"meta", "runs", "cells", "metrics", "samples", "artifacts"})
SQLITE_MAGIC = b"SQLite format 3\x00"


def store_path(run_dir: str | Path) -> Path:
    """`RUN_DIR/results.sqlite`; a path to the file itself (any existing file, or a `.sqlite` name) is accepted too."""
    p = Path(run_dir)
    return p if p.suffix == ".sqlite" or p.is_file() else p / STORE_NAME


def _not_a_store(path: Path, why: str) -> UsageError:
    return UsageError(f"{path} is not a quantrisk results store ({why}); pass the run directory that `quantrisk run` "
                      "wrote, or move the file away and run again")


def _open_readonly(path: Path) -> sqlite3.Connection:
    """Open `path` without writing it, nor anything beside it: `mode=ro`, and `immutable=1` for a WAL database that
    no writer holds (a plain read-only open would create -wal/-shm files next to it). `UsageError` unless it is a
    quantrisk results store (SQLite with the store's tables and a schema version)."""
    from urllib.parse import quote

    if not path.is_file():
        raise UsageError(f"no results store at {path} (run `quantrisk run SPEC --out DIR` first)")
    try:
        with path.open("rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise UsageError(f"cannot read results store {path}: {exc.strerror or exc}") from None
    if not head:
        raise _not_a_store(path, "an empty file")
    if not head.startswith(SQLITE_MAGIC):
        raise _not_a_store(path, "not an SQLite database")
    wal_without_writer = len(head) > 18 and head[18] == 2 and not Path(f"{path}-wal").exists()
    uri = f"file:{quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if wal_without_writer else "")
    conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = sorted(TABLES - tables)
        if missing:
            raise _not_a_store(path, f"an SQLite database without the store's tables: {', '.join(missing)}")
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if version is None:
            raise _not_a_store(path, "no schema version in its meta table")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _not_a_store(path, str(exc)) from None
    except BaseException:
        conn.close()
        raise
    return conn


def sha256_path(path: str | Path) -> str | None:
    """sha256 of a file, or of a directory (sorted relative paths + file hashes); None if missing."""
    p = Path(path)
    if p.is_file():
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(f.relative_to(p).as_posix().encode() + b"\x00" + (sha256_path(f) or "").encode() + b"\x01")
        return h.hexdigest()
    return None


def _write_error(path: Path, exc: sqlite3.Error | OSError) -> QuantriskError:
    """One line for a failed write (SQLite's own error, or an OSError from the file system), with what to do."""
    text = str(exc).lower()
    code = exc.errno if isinstance(exc, OSError) else None
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)) or "full" in text or "no space" in text:
        why, todo = "the disk is full", "free some space, then run the same command again to resume"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text or "read-only" in text:
        why, todo = "the file or its directory is read-only", "fix the permissions or pass another --out"
    elif "locked" in text or "busy" in text:
        why = "another process holds the store (is a second `quantrisk run` writing to it?)"
        todo = "wait for it to finish, or pass another --out"
    else:
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        todo = "run the same command again to resume"
    return QuantriskError(f"cannot write results store {path}: {why}; nothing of this cell was stored; {todo}")


class Store:
    """The SQLite results store of one run directory (see module doc)."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        """`create=True`: the run's writer (creates the store). `create=False`: read-only (report, status, export),
        which never writes the file; both refuse a file that is not a quantrisk results store (`UsageError`)."""
        self.path = store_path(path)
        self.readonly = not create
        if create:  # the writer never creates or writes a store (or its journal files) through a planted link
            for suffix in ("", "-wal", "-shm", "-journal"):
                refuse_link(Path(f"{self.path}{suffix}"), "results store")
        if self.readonly or (self.path.is_file() and self.path.stat().st_size > 0):
            self.conn = _open_readonly(self.path)  # checks it is a store before a writer touches it
            if self.readonly:
                return
            self.conn.close()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise UsageError(f"{self.path} is not a quantrisk results store ({exc}); pass the run directory that "
                                 "`quantrisk run` wrote, or move the file away and run again") from None
            raise _write_error(self.path, exc) from None
        except OSError as exc:
            raise QuantriskError(f"cannot create results store {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolls back and raises `QuantriskError` on a write failure."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.OperationalError, OSError) as exc:
            raise _write_error(self.path, exc) from None
        try:
            yield self.conn
            self._commit()
        except (sqlite3.Error, OSError) as exc:  # OSError: the file system under SQLite (e.g. ENOSPC)
            self._rollback()
            raise _write_error(self.path, exc) from None
        except BaseException:
            self._rollback()
            raise

    def _commit(self) -> None:
        """COMMIT the open transaction (the one place a write reaches the disk)."""
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # -------------------------------------------------------------- runs

    def begin_run(self, spec_name: str, spec_json: str, environment: dict[str, Any], executor: str) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (spec_name, spec_json, spec_sha256, environment, executor, started) VALUES (?,?,?,?,?,?)",
                (spec_name, spec_json, hashlib.sha256(spec_json.encode()).hexdigest(), json.dumps(environment, default=str),
                 executor, time.time()))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, *, n_cells: int, n_skipped: int, n_run: int, n_failed: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET finished=?, n_cells=?, n_skipped=?, n_run=?, n_failed=? WHERE id=?",
                      (time.time(), n_cells, n_skipped, n_run, n_failed, run_id))

    def runs(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY id")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    # -------------------------------------------------------------- cells

    def add_cells(self, cells: list[Cell]) -> None:
        """Insert cells not yet in the store (status pending); existing rows keep their status."""
        with self.transaction() as c:
            c.executemany(
                "INSERT OR IGNORE INTO cells (id, kind, label, params, deps, status) VALUES (?,?,?,?,?,'pending')",
                [(x.id, x.kind, x.label, json.dumps(x.params, sort_keys=True), json.dumps(list(x.deps))) for x in cells])

    def status(self, cell_id: str) -> str | None:
        row = self.conn.execute("SELECT status FROM cells WHERE id=?", (cell_id,)).fetchone()
        return row[0] if row else None

    def statuses(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT id, status FROM cells").fetchall())

    def mark_running(self, cell_id: str, run_id: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE cells SET status='running', attempts=attempts+1, run_id=?, started=?, error=NULL WHERE id=?",
                      (run_id, time.time(), cell_id))

    def mark_failed(self, cell_id: str, error: str, seconds: float | None = None) -> None:
        """Status `failed` with its error; `seconds` (all attempts so far) when given."""
        with self.transaction() as c:
            c.execute("UPDATE cells SET status='failed', finished=?, error=?, seconds=COALESCE(?, seconds) WHERE id=?",
                      (time.time(), error[:4000], seconds, cell_id))

    def record_seconds(self, cell_id: str, seconds: float) -> None:
        """Seconds spent so far on a cell in flight (its attempts so far included): a heartbeat, so that a resumed
        run adds the time of an interrupted attempt to the cell's total instead of losing it."""
        with self.transaction() as c:
            c.execute("UPDATE cells SET seconds=? WHERE id=? AND status='running'", (float(seconds), cell_id))

    def write_result(self, cell_id: str, result: StudyResult) -> None:
        """Store a finished cell: metrics, samples, artifacts and status `done`, all in one transaction."""
        artifacts = [(cell_id, k, str(v), sha256_path(v)) for k, v in sorted(result.artifacts.items())]
        metrics = [(cell_id, m.name, m.value, m.ci_low, m.ci_high, json.dumps(m.labels, sort_keys=True)) for m in result.metrics]
        samples = [(cell_id, i, json.dumps(s, sort_keys=True, default=str)) for i, s in enumerate(result.samples)]
        with self.transaction() as c:
            for table in ("metrics", "samples", "artifacts"):
                c.execute(f"DELETE FROM {table} WHERE cell_id=?", (cell_id,))
            c.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?)", metrics)
            c.executemany("INSERT INTO samples VALUES (?,?,?)", samples)
            c.executemany("INSERT INTO artifacts VALUES (?,?,?,?)", artifacts)
            c.execute("UPDATE cells SET status='done', finished=?, seconds=?, environment=?, skipped=?, error=NULL WHERE id=?",
                      (time.time(), float(result.seconds), json.dumps(result.environment, sort_keys=True, default=str),
                       json.dumps(result.skipped, sort_keys=True), cell_id))

    def cells(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT * FROM cells" + (" WHERE kind=?" if kind else "") + " ORDER BY rowid"
        cur = self.conn.execute(q, (kind,) if kind else ())
        cols = [d[0] for d in cur.description]
        out = []
        for r in cur.fetchall():
            d = dict(zip(cols, r, strict=True))
            for k in ("params", "deps", "environment", "skipped"):
                d[k] = json.loads(d[k]) if d.get(k) else ({} if k != "deps" else [])
            out.append(d)
        return out

    def latest_done_cell(self, kind: str) -> dict[str, Any] | None:
        """The most recently finished done cell of `kind` (as `cells()` returns it), None if there is none."""
        done = [c for c in self.cells(kind=kind) if c["status"] == "done"]
        return max(done, key=lambda c: c["finished"] or 0.0) if done else None

    def artifacts(self, cell_id: str) -> dict[str, str]:
        return dict(self.conn.execute("SELECT name, path FROM artifacts WHERE cell_id=?", (cell_id,)).fetchall())

    def artifacts_ok(self, cell_id: str) -> bool:
        """True if every artifact of the cell still exists on disk."""
        return all(Path(p).exists() for p in self.artifacts(cell_id).values())

    # -------------------------------------------------------------- reading results

    def metrics(self, kind: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """Metric rows joined with their cell (kind, label): dicts with cell_id, kind, name, value, ci_low, ci_high, labels."""
        q = ("SELECT m.cell_id, c.kind, m.name, m.value, m.ci_low, m.ci_high, m.labels FROM metrics m "
             "JOIN cells c ON c.id = m.cell_id WHERE c.status='done'")
        args: list[Any] = []
        if kind:
            q += " AND c.kind=?"
            args.append(kind)
        if name:
            q += " AND m.name=?"
            args.append(name)
        q += " ORDER BY c.rowid, m.rowid"
        rows = self.conn.execute(q, args).fetchall()
        return [{"cell_id": r[0], "kind": r[1], "name": r[2], "value": r[3], "ci_low": r[4], "ci_high": r[5],
                 "labels": json.loads(r[6])} for r in rows]

    def metric_rows(self, cell_id: str) -> list[MetricRow]:
        rows = self.conn.execute("SELECT name, value, labels, ci_low, ci_high FROM metrics WHERE cell_id=? ORDER BY rowid",
                                 (cell_id,)).fetchall()
        return [MetricRow(n, v, json.loads(lab), lo, hi) for n, v, lab, lo, hi in rows]

    def sample_rows(self, cell_id: str) -> list[dict[str, Any]]:
        """The per-sample rows of one cell, in order."""
        rows = self.conn.execute("SELECT row FROM samples WHERE cell_id=? ORDER BY idx", (cell_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def samples(self, kind: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(cell_id, row) of every per-sample row of done cells (of `kind`)."""
        q = "SELECT s.cell_id, s.row FROM samples s JOIN cells c ON c.id = s.cell_id WHERE c.status='done'"
        args = []
        if kind:
            q += " AND c.kind=?"
            args.append(kind)
        for cid, row in self.conn.execute(q + " ORDER BY c.rowid, s.idx", args):
            yield cid, json.loads(row)

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Cells per status."""
        return dict(self.conn.execute("SELECT status, COUNT(*) FROM cells GROUP BY status").fetchall())
