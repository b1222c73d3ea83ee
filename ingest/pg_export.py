"""A PostgreSQL store copied into a SQLite file with the SQLite store's schema, so that a state
dir stays readable after PostgreSQL stops (the lab calls it at `ecgpipe down`).

    export_to_sqlite(dsn, sqlite_path) -> dict[str, int]   rows copied per table

Everything is read in ONE read-only REPEATABLE READ transaction (a consistent copy even while
workers still write), streamed through server-side cursors, and written to a temporary file
beside `sqlite_path` that is fsynced and renamed over it, so a reader sees the old file or the
whole new one, never a part. readings keep their PostgreSQL id as their rowid (and duplicates
theirs), so rowid order is id order and an analysis cursor taken against PostgreSQL means the
same rows in the export. Once the file exists it wins over store.json (ingest/pg_read.py).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from ingest.errors import StoreError
from ingest.pg_store import connect, scrub, where
from ingest.store import SCHEMA
from ingest.store_common import COLUMNS

CHUNK_ROWS = 2_000

# table -> (does its PostgreSQL id become the SQLite rowid, the order rows are copied in)
_COPIES = {
    "readings": (True, "id"),
    "duplicates": (True, "id"),
    "quarantine": (False, "id"),  # id is one of its columns in both schemas
    "refused": (False, "device_id, reason"),
}


def _statements(table: str) -> tuple[str, str]:
    with_id, order = _COPIES[table]
    cols = COLUMNS[table]
    pg_cols = ", ".join(["id", *cols] if with_id else cols)
    lite_cols = ", ".join(["rowid", *cols] if with_id else cols)
    marks = ", ".join(["?"] * (len(cols) + with_id))
    select = f"SELECT {pg_cols} FROM {table} ORDER BY {order}"  # noqa: S608 -- constant table and column names
    insert = f"INSERT INTO {table} ({lite_cols}) VALUES ({marks})"  # noqa: S608 -- same
    return select, insert


def export_to_sqlite(dsn: str, sqlite_path: Path) -> dict[str, int]:
    """Copy every table of the PostgreSQL store at `dsn` into `sqlite_path` (replaced
    atomically). StoreError (and the old file untouched) on any failure."""
    target = Path(sqlite_path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.export")
    counts: dict[str, int] = {}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        with connect(dsn, autocommit=False) as pg:
            pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            pg.read_only = True
            lite = sqlite3.connect(tmp, isolation_level=None)
            try:
                lite.executescript(SCHEMA)
                lite.execute("BEGIN")
                for table in _COPIES:
                    counts[table] = _copy(pg, lite, table)
                lite.execute("COMMIT")
            finally:
                lite.close()
        _fsync(tmp)
        tmp.replace(target)
        _fsync(target.parent)
    except psycopg.Error as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"exporting the PostgreSQL store at {where(dsn)}: {scrub(dsn, str(exc))}"
                         ) from exc
    except (sqlite3.Error, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"exporting the PostgreSQL store to {target}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counts


def _copy(pg: psycopg.Connection[Any], lite: sqlite3.Connection, table: str) -> int:
    select, insert = _statements(table)
    n = 0
    with pg.cursor(name=f"export_{table}") as cur:  # server-side: streamed, not all in memory
        cur.execute(select)
        while rows := cur.fetchmany(CHUNK_ROWS):
            lite.executemany(insert, rows)
            n += len(rows)
    return n


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
