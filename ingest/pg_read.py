"""Where the store's readers read: the SQLite file, or PostgreSQL named by a locator file.

    with store_snapshot(db_path) as snap:        snap.rows(sql, params): one consistent snapshot
        rows = snap.rows("SELECT ... WHERE rowid > ?", (cursor,))

The rule (docs/architecture.md, "The PostgreSQL store"): when the folder of `db_path` holds
`store.json` = {"kind": "postgres", "dsn": "postgresql://..."} AND `db_path` itself (normally
`<state>/ingest/ingest.sqlite`) does not exist, reads go to PostgreSQL; otherwise to the SQLite
file through ecgcore.sqlite_snapshot, as before. So a state dir whose store was exported at
`ecgpipe down` (ingest/pg_export.py writes ingest.sqlite) reads the export, and PostgreSQL need
not run any more.

PostgreSQL side: one connection and ONE read-only REPEATABLE READ transaction per snapshot (the
"one snapshot per call" property of the SQLite readers: several queries of one call agree).
The readers' SQL is SQLite's; `translate` maps the little of it that differs (`?` placeholders,
rowid -> the id column, PRAGMA table_info, sqlite_master, CAST AS REAL -> DOUBLE PRECISION), and
rows come back as the same Python values (bytes for BYTEA, int for integral aggregates that
PostgreSQL returns as numeric, float for DOUBLE PRECISION). A database without the store's
tables yet reads as empty, as a missing SQLite file does. Errors are StoreError in one line
naming host:port, never the password.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import psycopg

from ecgcore.sqlite_snapshot import SnapshotError, read_snapshot
from ingest.errors import StoreError
from ingest.pg_store import WITH_ID, connect, scrub, where

LOCATOR = "store.json"
KIND_POSTGRES = "postgres"
Row = tuple[Any, ...]


class Rows(Protocol):
    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]: ...


def locator_dsn(db_path: Path | str) -> str | None:
    """The DSN reads of `db_path` go to, or None for the SQLite file (the rule above)."""
    path = Path(db_path)
    loc = path.parent / LOCATOR
    if os.path.lexists(path) or not os.path.lexists(loc):
        return None
    try:
        doc = json.loads(loc.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{loc} is not a readable store locator: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != KIND_POSTGRES:
        return None
    dsn = doc.get("dsn")
    if not isinstance(dsn, str) or not dsn:
        raise StoreError(f"{loc}: kind postgres without a \"dsn\" string")
    return dsn


_PRAGMA = re.compile(r"^\s*PRAGMA table_info\((\w+)\)\s*$")
_MASTER = re.compile(r"^SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '(\w+)'$")
_COLUMNS_SQL = ("SELECT ordinal_position - 1, column_name::text FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s"
                " AND NOT (column_name = 'id' AND table_name = ANY(%s)) ORDER BY ordinal_position")
_TABLE_SQL = ("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()"
              " AND table_name = %s")


def translate(sql: str) -> tuple[str, tuple[Any, ...]]:
    """The PostgreSQL form of one of the readers' SQLite statements, and extra parameters."""
    if m := _PRAGMA.match(sql):  # (cid, name) per column, the SQLite schema's (no id)
        return (_COLUMNS_SQL, (m.group(1), list(WITH_ID)))
    if m := _MASTER.match(sql):
        return (_TABLE_SQL, (m.group(1),))
    out = sql.replace("%", "%%").replace("?", "%s")
    out = re.sub(r"\browid\b", "id", out)
    return re.sub(r"\bAS REAL\)", "AS DOUBLE PRECISION)", out), ()


def _value(v: Any) -> Any:
    if isinstance(v, memoryview):
        return bytes(v)
    if isinstance(v, Decimal):  # SUM over BIGINT; SQLite gives an int
        return int(v) if v == v.to_integral_value() else float(v)
    return v


class PgSnapshot:
    """Queries over one read-only REPEATABLE READ transaction (or an empty store)."""

    def __init__(self, conn: psycopg.Connection[Any] | None, dsn: str) -> None:
        self._conn = conn
        self.dsn = dsn

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        if self._conn is None:
            return []
        pg_sql, extra = translate(sql)
        try:
            got = self._conn.execute(pg_sql, (*extra, *params)).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"reading the PostgreSQL store at {where(self.dsn)}:"
                             f" {scrub(self.dsn, str(exc))}") from exc
        return [tuple(_value(v) for v in row) for row in got]


@contextmanager
def pg_snapshot(dsn: str) -> Iterator[PgSnapshot]:
    conn = connect(dsn, autocommit=False)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            ready = conn.execute("SELECT to_regclass('readings') IS NOT NULL").fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"reading the PostgreSQL store at {where(dsn)}:"
                             f" {scrub(dsn, str(exc))}") from exc
        yield PgSnapshot(conn if ready and ready[0] else None, dsn)
        conn.rollback()  # read-only: nothing to commit
    finally:
        conn.close()


@contextmanager
def store_snapshot(db_path: Path | str) -> Iterator[Rows]:
    """One consistent snapshot of the store `db_path` stands for (the rule above); every
    failure is StoreError."""
    dsn = locator_dsn(db_path)
    if dsn is not None:
        with pg_snapshot(dsn) as pg:
            yield pg
        return
    try:
        with read_snapshot(db_path) as snap:
            yield snap
    except SnapshotError as exc:
        raise StoreError(str(exc)) from exc
