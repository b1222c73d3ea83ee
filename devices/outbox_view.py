"""Read-only views of fleet/outbox.sqlite, for the lab's `inspect`, `report` and ledger.

Every function opens the database with a `file:...?mode=ro` URI, reads everything it
returns inside ONE read transaction (a consistent snapshot while the fleet keeps
writing: WAL readers never block the writer nor see half a transaction), and closes it.
A missing file, or a file the fleet has not created its tables in yet, reads as empty.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from devices.errors import OutboxError

T = TypeVar("T")


@contextmanager
def _snapshot(db_path: Path | str) -> Iterator[sqlite3.Connection | None]:
    path = Path(db_path)
    if not path.is_file():
        yield None
        return
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open {path} read-only: {exc}") from exc
    try:
        db.execute("BEGIN")
        yield db
        db.execute("COMMIT")
    finally:
        db.close()


def _read(db_path: Path | str, empty: T, fn: Callable[[sqlite3.Connection], T]) -> T:
    try:
        with _snapshot(db_path) as db:
            return empty if db is None else fn(db)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return empty  # the fleet created the file but not its schema yet
        raise OutboxError(f"cannot read {db_path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise OutboxError(f"{db_path} is not a readable outbox: {exc}") from exc


def device_summaries(db_path: Path | str) -> list[dict[str, Any]]:
    """One dict per device, sorted by id: device_id, boot_epoch, generated (= next_seq),
    buffered (rows), oldest_seq, newest_seq, oldest_captured_at (None when empty),
    bytes (sum of payload lengths), evicted (eviction log entries)."""

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        evicted = dict(db.execute("SELECT device_id, COUNT(*) FROM evictions GROUP BY device_id"))
        rows = db.execute(
            "SELECT d.device_id, d.boot_epoch, d.next_seq, COUNT(o.seq), MIN(o.seq), MAX(o.seq),"
            " MIN(o.captured_at), COALESCE(SUM(LENGTH(o.payload)), 0)"
            " FROM devices d LEFT JOIN outbox o ON o.device_id = d.device_id"
            " GROUP BY d.device_id ORDER BY d.device_id"
        )
        return [
            {"device_id": dev, "boot_epoch": boot, "generated": gen, "buffered": n,
             "oldest_seq": lo, "newest_seq": hi, "oldest_captured_at": cap, "bytes": size,
             "evicted": evicted.get(dev, 0)}
            for dev, boot, gen, n, lo, hi, cap, size in rows
        ]

    return _read(db_path, [], read)


def buffered_readings(db_path: Path | str, device_id: str) -> list[dict[str, Any]]:
    """The device's outbox rows, oldest first: seq, boot_epoch, captured_at, enqueued_at,
    attempts, last_sent_at, bytes."""

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        rows = db.execute(
            "SELECT seq, boot_epoch, captured_at, enqueued_at, attempts, last_sent_at,"
            " LENGTH(payload) FROM outbox WHERE device_id = ? ORDER BY seq", (device_id,),
        )
        keys = ("seq", "boot_epoch", "captured_at", "enqueued_at", "attempts", "last_sent_at",
                "bytes")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    return _read(db_path, [], read)


def ledger_sets(db_path: Path | str) -> dict[str, dict[str, Any]]:
    """Per device, from one snapshot: {"generated": next_seq, "buffered": set of seqs in the
    outbox, "evicted": {seq: reason}}. Generated readings are exactly range(generated)."""

    def read(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}

        def entry(dev: str) -> dict[str, Any]:
            return out.setdefault(dev, {"generated": 0, "buffered": set(), "evicted": {}})

        for dev, n in db.execute("SELECT device_id, next_seq FROM devices"):
            entry(dev)["generated"] = int(n)
        for dev, seq in db.execute("SELECT device_id, seq FROM outbox"):
            entry(dev)["buffered"].add(int(seq))
        for dev, seq, reason in db.execute("SELECT device_id, seq, reason FROM evictions"):
            entry(dev)["evicted"][int(seq)] = reason
        return out

    return _read(db_path, {}, read)
