"""Read-only, consistent snapshots of a SQLite file that another process may be writing.

    with read_snapshot(path) as snap:
        rows = snap.rows("SELECT ...")

The file is opened with a `file:...?mode=ro` URI, so it is never created, locked for writing or
altered; everything read inside the `with` comes from ONE read transaction (WAL readers see the
last committed state and never block the writer). A missing file, or one whose tables do not
exist yet, reads as empty. A file that is not a readable database, or a path that is there but
is not a file (a directory, a symlink loop), raises SnapshotError.
Used by devices.outbox_view and ingest.store_view, the read APIs of the two stores.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

Row = tuple[Any, ...]


class SnapshotError(Exception):
    """The file exists but cannot be read as a SQLite database."""


class Snapshot:
    """Queries over one read transaction; an absent database answers every query with []."""

    def __init__(self, db: sqlite3.Connection | None, path: Path) -> None:
        self._db = db
        self.path = path

    @property
    def exists(self) -> bool:
        return self._db is not None

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        if self._db is None:
            return []
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # the writer created the file but not its schema yet
            raise SnapshotError(f"cannot read {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise SnapshotError(f"{self.path} is not a readable database: {exc}") from exc


@contextmanager
def read_snapshot(db_path: Path | str) -> Iterator[Snapshot]:
    path = Path(db_path)
    if not path.is_file():
        if os.path.lexists(path):  # a directory in its place, a symlink loop or a dangling one
            raise SnapshotError(f"{path} is not a readable database: {_not_a_file(path)}")
        yield Snapshot(None, path)
        return
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None)
        db.execute("BEGIN")
    except sqlite3.Error as exc:
        raise SnapshotError(f"cannot open {path} read-only: {exc}") from exc
    try:
        yield Snapshot(db, path)
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise SnapshotError(f"{path} is not a readable database: {exc}") from exc
    finally:
        db.close()


def _not_a_file(path: Path) -> str:
    """Why a path that is there is not a database file."""
    if path.is_dir():
        return "it is a directory"
    try:
        path.stat()
    except OSError as exc:
        return f"{exc.strerror or exc}"
    return "it is not a regular file"
