"""What ingest/ingest.sqlite knows of ONE reading of one device, for `ecgpipe inspect reading`.

    stored_reading(db, "hc-0001", 72) -> StoredReading | None   its row (without samples) and
                                                                 the duplicate copies received
    store_device_ids(db) -> list[str]                            every device with a stored row

Read like ingest/store_view.py: one read-only snapshot (ecgcore.sqlite_snapshot), a missing
file reads as empty, a file that is not a readable database raises StoreError. The samples of a
stored reading: store_view.reading_samples.

A seq names one reading of a device across its boots, so the reading is looked up by
(device_id, seq); should two boots have stored the same seq (a device that lost its counter),
the first stored is returned and `same_seq_rows` says how many there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ecgcore.sqlite_snapshot import SnapshotError
from ingest.errors import StoreError
from ingest.pg_read import store_snapshot


@dataclass(frozen=True)
class StoredReading:
    """One stored reading without its samples, and the duplicate copies of it that arrived."""

    device_id: str
    seq: int
    boot_epoch: int
    captured_at: float
    received_at: float
    stored_at: float
    n_samples: int
    sample_rate_hz: int
    gain_uv: float
    backlog: bool  # sent from the device's backlog, not live
    duplicates_received_at: tuple[float, ...] = ()  # each later copy, discarded as a duplicate
    same_seq_rows: int = 1

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz if self.sample_rate_hz else 0.0


def stored_reading(db_path: Path | str, device_id: str, seq: int) -> StoredReading | None:
    """The stored row of (device_id, seq) and its duplicates; None when it is not stored."""
    try:
        with store_snapshot(db_path) as snap:
            rows = snap.rows("SELECT boot_epoch, captured_at, received_at, stored_at, n_samples,"
                             " sample_rate_hz, gain_uv, backlog FROM readings"
                             " WHERE device_id = ? AND seq = ? ORDER BY stored_at, rowid",
                             (device_id, seq))
            dups = snap.rows("SELECT boot_epoch, received_at FROM duplicates"
                             " WHERE device_id = ? AND seq = ? ORDER BY received_at, rowid",
                             (device_id, seq))
    except SnapshotError as exc:
        raise StoreError(str(exc)) from exc
    if not rows:
        return None
    boot, cap, recv, at, n, rate, gain, backlog = rows[0]
    return StoredReading(
        device_id=device_id, seq=seq, boot_epoch=int(boot), captured_at=float(cap),
        received_at=float(recv), stored_at=float(at), n_samples=int(n), sample_rate_hz=int(rate),
        gain_uv=float(gain), backlog=bool(backlog),
        duplicates_received_at=tuple(float(t) for b, t in dups if int(b) == int(boot)),
        same_seq_rows=len(rows))


def store_device_ids(db_path: Path | str) -> list[str]:
    """Every device with at least one stored reading, sorted."""
    try:
        with store_snapshot(db_path) as snap:
            return [str(r[0]) for r in snap.rows(
                "SELECT DISTINCT device_id FROM readings ORDER BY device_id")]
    except SnapshotError as exc:
        raise StoreError(str(exc)) from exc
