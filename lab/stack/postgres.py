"""The stack's PostgreSQL (`ecgpipe up --store postgres`): the `postgres` component.

One cluster per state dir, initialised on first start (initdb, trust authentication on
127.0.0.1 only: a local development store), with an `ecgpipe` database. Every ingest worker
writes to it (ingest/pg_store.py); the lab reads it through DIR/ingest/store.json.

Where the cluster lives: outside the state dir, in the system's temp folder, as
ecgpipe-pg-<12 hex of the state dir's path>/ (data/, sock/), named in DIR/postgres/cluster.json.
PostgreSQL refuses to run as root, so as root it runs as the `postgres` user
(ecgcore/pgserver.py), which cannot enter a root-only state dir (tests' tmp dirs are 0700);
and the Unix socket's path must stay under 107 bytes. `up` removes the previous run's cluster
with the rest of the previous run.

`ecgpipe down` keeps the state dir readable after PostgreSQL stops: once ingest and the
analysis have stopped, it copies the store into DIR/ingest/ingest.sqlite (ingest/pg_export.py),
which the readers prefer over store.json, and then stops the server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ecgcore.files import read_json, write_json_atomic
from ecgcore.pgserver import (
    DATABASE,
    PgServerError,
    create_database,
    dsn_for,
    init_cluster,
    is_ready,
    own_dir,
    server_argv,
)
from ingest.errors import StoreError
from ingest.pg_export import export_to_sqlite
from lab.errors import ComponentError, StateDirError
from lab.stack.statedir import StackConfig, StateDir

COMPONENT = "postgres"
STORES = ("sqlite", "postgres")


def _record(sd: StateDir) -> Path:
    return sd.root / "postgres" / "cluster.json"


def cluster_root(sd: StateDir) -> Path:
    """The folder of this state dir's cluster (data/ and sock/)."""
    doc = read_json(_record(sd))
    if isinstance(doc, dict) and isinstance(doc.get("root"), str):
        return Path(doc["root"])
    digest = hashlib.sha256(str(sd.root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ecgpipe-pg-{digest}"


def dsn(cfg: StackConfig) -> str:
    return dsn_for(cfg.pg_port)


def prepare(sd: StateDir) -> None:
    """The cluster, initialised if it is not there yet (ComponentError in one line if it cannot be)."""
    root = cluster_root(sd)
    try:
        root.mkdir(parents=True, exist_ok=True)
        st = root.lstat()  # a shared temp folder: refuse one someone else made (or a link)
        if root.is_symlink() or st.st_uid != os.geteuid():
            raise ComponentError(f"postgres: {root} is not a folder of ours; remove it")
        root.chmod(0o711)  # the postgres user passes through, nobody lists it
        write_json_atomic(_record(sd), {"root": str(root)})
        if not (root / "data" / "PG_VERSION").exists():
            init_cluster(root / "data")
        own_dir(root / "sock", 0o755)
    except (PgServerError, OSError) as exc:
        raise ComponentError(f"postgres: {exc}") from exc


def argv(sd: StateDir, cfg: StackConfig) -> list[str]:
    root = cluster_root(sd)
    return server_argv(root / "data", cfg.pg_port, root / "sock")


def ready(cfg: StackConfig) -> bool:
    """Accepting connections, with the `ecgpipe` database made (on the first start)."""
    if not is_ready(cfg.pg_port):
        return False
    try:
        create_database(dsn_for(cfg.pg_port, "postgres"), DATABASE)
    except Exception as exc:  # noqa: BLE001 -- psycopg's DuplicateDatabase on every later start
        if "already exists" not in str(exc):
            return False
    return True


def export_store(sd: StateDir, cfg: StackConfig) -> int:
    """Copy the store into DIR/ingest/ingest.sqlite (so `report` and `inspect` read it after the
    server stops). Returns the readings copied."""
    try:
        counts = export_to_sqlite(dsn(cfg), sd.ingest_db)
    except StoreError as exc:
        raise ComponentError(f"postgres: copying the store into {sd.ingest_db} failed: {exc}") from exc
    return int(counts.get("readings", 0))


def export_before_stop(sd: StateDir) -> str:
    """`down`, before PostgreSQL stops: export_store, said in words (a failure too: `down` goes on)."""
    try:
        return f"store copied to {sd.ingest_db} ({export_store(sd, sd.config())} readings)"
    except (ComponentError, StateDirError) as exc:
        return str(exc)


def remove_cluster(sd: StateDir) -> None:
    """The previous run's cluster, with the rest of the previous run (`up`)."""
    shutil.rmtree(cluster_root(sd), ignore_errors=True)
