"""Which store the ingest service writes: SQLite in the state dir, or PostgreSQL.

    open_store(state_dir / "ingest", None)        SqliteStore at ingest/ingest.sqlite
    open_store(state_dir / "ingest", dsn)         PgStore(dsn), and ingest/store.json saying so

store.json = {"kind": "postgres", "dsn": ...} is how the lab's readers find a PostgreSQL store
(ingest/pg_read.py); it is written atomically once the store is open (its schema made), so a
reader never follows a locator to a database without tables. The DSN is saved as given: use
trust or a password file (~/.pgpass), not a password inside the DSN. A folder that already
holds ingest.sqlite is refused for PostgreSQL: reads would go to that file (it wins over
store.json) while the service wrote elsewhere; move it away first (it is an earlier run's
store, or the export `ecgpipe down` made).
"""

from __future__ import annotations

from pathlib import Path

from ecgcore.files import write_json_atomic
from ingest.errors import StoreError
from ingest.pg_read import KIND_POSTGRES, LOCATOR
from ingest.pg_store import PgStore
from ingest.store import SqliteStore
from ingest.store_common import Store

DB_NAME = "ingest.sqlite"


def open_store(state_ingest_dir: Path, dsn: str | None) -> Store:
    """The service's store: SQLite when dsn is None, else PostgreSQL (StoreError on failure)."""
    folder = Path(state_ingest_dir)
    if dsn is None:
        return SqliteStore(folder / DB_NAME)
    if (folder / DB_NAME).exists():
        raise StoreError(f"{folder / DB_NAME} exists: with a PostgreSQL store the lab would read"
                         " that file instead (it wins over store.json); move it away first")
    store = PgStore(dsn)
    try:
        write_json_atomic(folder / LOCATOR, {"kind": KIND_POSTGRES, "dsn": dsn})
    except OSError as exc:
        store.close()
        raise StoreError(f"cannot write {folder / LOCATOR}: {exc}") from exc
    return store
