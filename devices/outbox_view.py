"""Read-only views of fleet/outbox.sqlite, for the lab's `inspect`, `report` and ledger.

Every function reads everything it returns from ONE read-only snapshot
(ecgcore.sqlite_snapshot: a `file:...?mode=ro` URI and one read transaction, so a consistent
view while the fleet keeps writing: WAL readers never block the writer nor see half a
transaction). A missing file, or a file the fleet has not created its tables in yet, reads as
empty; a file that is not a readable database raises OutboxError.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from devices.errors import OutboxError
from ecgcore.sqlite_snapshot import Snapshot, SnapshotError, read_snapshot

T = TypeVar("T")


def _read(db_path: Path | str, fn: Callable[[Snapshot], T]) -> T:
    """fn over one read snapshot of the outbox; an unreadable file is an OutboxError."""
    try:
        with read_snapshot(db_path) as snap:
            return fn(snap)
    except SnapshotError as exc:
        raise OutboxError(str(exc)) from exc


def device_summaries(db_path: Path | str) -> list[dict[str, Any]]:
    """One dict per device, sorted by id: device_id, boot_epoch, generated (= next_seq),
    buffered (rows), oldest_seq, newest_seq, oldest_captured_at (None when empty),
    bytes (sum of payload lengths), evicted (eviction log entries)."""

    def read(snap: Snapshot) -> list[dict[str, Any]]:
        evicted: dict[str, int] = dict(
            snap.rows("SELECT device_id, COUNT(*) FROM evictions GROUP BY device_id"))
        rows = snap.rows(
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

    return _read(db_path, read)


def buffered_readings(db_path: Path | str, device_id: str) -> list[dict[str, Any]]:
    """The device's outbox rows, oldest first: seq, boot_epoch, captured_at, enqueued_at,
    attempts, last_sent_at, bytes."""

    def read(snap: Snapshot) -> list[dict[str, Any]]:
        rows = snap.rows(
            "SELECT seq, boot_epoch, captured_at, enqueued_at, attempts, last_sent_at,"
            " LENGTH(payload) FROM outbox WHERE device_id = ? ORDER BY seq", (device_id,),
        )
        keys = ("seq", "boot_epoch", "captured_at", "enqueued_at", "attempts", "last_sent_at",
                "bytes")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    return _read(db_path, read)


def ledger_sets(db_path: Path | str) -> dict[str, dict[str, Any]]:
    """Per device, from one snapshot: {"generated": next_seq, "buffered": set of seqs in the
    outbox, "evicted": {seq: reason}}. Generated readings are exactly range(generated)."""

    def read(snap: Snapshot) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}

        def entry(dev: str) -> dict[str, Any]:
            return out.setdefault(dev, {"generated": 0, "buffered": set(), "evicted": {}})

        for dev, n in snap.rows("SELECT device_id, next_seq FROM devices"):
            entry(dev)["generated"] = int(n)
        for dev, seq in snap.rows("SELECT device_id, seq FROM outbox"):
            entry(dev)["buffered"].add(int(seq))
        for dev, seq, reason in snap.rows("SELECT device_id, seq, reason FROM evictions"):
            entry(dev)["evicted"][int(seq)] = reason
        return out

    return _read(db_path, read)
