"""The sources of truth a command reads, and the check that they are there before it reads them.

The ledger balances sets: generated and buffered come from fleet/outbox.sqlite, stored from
ingest/ingest.sqlite. A store that is missing reads as empty (ecgcore.sqlite_snapshot), so a
ledger over a copied state dir without fleet/ would balance zeros and say "holds". Commands that
need a store call `require_sources` first: a store missing, not a file, or not a readable
database of its kind is a StateDirError, one line naming the file.

A store that opens but is damaged further in (a torn page) is found by the read itself:
devices.errors.OutboxError or ingest.errors.StoreError. DATA_ERRORS names those packages'
roots, so the CLI can turn them into one line without importing the device side itself.
"""

from __future__ import annotations

from pathlib import Path

from devices.errors import DeviceError
from ecgcore.files import read_jsonl
from ecgcore.sqlite_snapshot import SnapshotError, read_snapshot
from ingest.errors import IngestError
from lab.errors import StateDirError
from lab.stack.statedir import StateDir

DATA_ERRORS: tuple[type[Exception], ...] = (DeviceError, IngestError)

_COPY_HINT = "a copied state dir must include fleet/ (and ingest/)"


def require_sources(sd: StateDir, *, outbox: bool = False, ingest: bool = False,
                    broker: bool = False, analysis: bool = False) -> None:
    """Raise StateDirError (one line) unless each source asked for is there and readable:
    fleet/outbox.sqlite with its devices table when `outbox`, ingest/ingest.sqlite with its
    readings table when `ingest`, watch/sys.jsonl with at least one sample when `broker`
    (`inspect broker`'s only source; the report can do without it, and says so),
    analysis/analysis.sqlite with its events table when `analysis`."""
    if outbox:
        _require(sd.outbox_db, "devices",
                 f"no device outboxes in {sd.outbox_db}: the ledger's source of truth for generated "
                 f"and buffered readings is")
    if ingest and _postgres_store(sd):
        pass  # a running stack's PostgreSQL (ingest/store.json), and it answers
    elif ingest:
        _require(sd.ingest_db, "readings",
                 f"no ingest store in {sd.ingest_db}: the ledger's source of truth for stored "
                 f"readings is")
    if analysis:
        _require(sd.analysis_db, "events",
                 f"no analysis store in {sd.analysis_db}: the source of truth for clinical events is")
    if broker:
        problem = broker_samples_problem(sd)
        if problem:
            raise StateDirError(f"no broker counters: {problem}")


def broker_samples_problem(sd: StateDir) -> str | None:
    """Why the $SYS watcher's samples (watch/sys.jsonl) cannot give the broker's counters, or
    None when they can: for a view that shows them, or says they are unavailable."""
    path = sd.sys_history
    try:
        samples = read_jsonl(path)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    if not samples:
        there = path.exists()
        return f"{path} {'holds no samples' if there else 'is missing'} (the $SYS watcher's)"
    return None


def _postgres_store(sd: StateDir) -> bool:
    """Whether the store is a PostgreSQL (DIR/ingest/store.json, no ingest.sqlite yet: the stack
    runs); StateDirError in one line when it does not answer."""
    from ingest.errors import StoreError
    from ingest.pg_read import locator_dsn
    from ingest.store_view import totals

    try:
        if locator_dsn(sd.ingest_db) is None:
            return False
        totals(sd.ingest_db)
    except StoreError as exc:
        raise StateDirError(f"the ingest store does not answer: {exc}") from exc
    return True


def _require(path: Path, table: str, what: str) -> None:
    if not path.is_file():
        there = path.exists() or path.is_symlink()
        why = "not a readable file" if there else "missing"
        raise StateDirError(f"{what} {why}; {_COPY_HINT}")
    try:
        with read_snapshot(path) as snap:
            found = snap.rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    except SnapshotError as exc:
        raise StateDirError(f"{what} unreadable ({exc})") from exc
    if not found:
        raise StateDirError(f"{what} damaged: {path} has no {table} table")
