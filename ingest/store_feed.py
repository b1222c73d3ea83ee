"""Read-only feed of stored readings WITH their samples, for the analysis stage.

    readings_after(db, cursor, limit) -> list[FeedReading]    the next stored readings, in the
                                                              store's insertion order (rowid)
    device_readings(db, device, boot, seq_lo, seq_hi)         one device's readings in a seq
                                                              range (context for a window)
    last_rowid(db) -> int                                     how far the store has got

The feed's cursor is the `readings` table's rowid. The ingest service is the store's only
writer and never deletes a row, so rowids only grow, in commit order: a row with a rowid above
a cursor is one the reader has not seen, and one committed later always gets a higher rowid.
(INSERT of a new row takes max(rowid) + 1.) A reader that commits its cursor with its results
therefore neither skips nor repeats a reading across a kill -9.

Read like ingest/store_view.py: one read-only snapshot per call (ecgcore.sqlite_snapshot, or
PostgreSQL's REPEATABLE READ when the state dir's store.json says so: ingest/pg_read.py, where
the id column is the cursor and is visible in commit order: ingest/pg_store.py), never a
write lock, nothing created; a missing file reads as empty, a file that is not a
readable database raises StoreError. The ingest service's write path is not touched.

Flags: the store keeps the wire's flag bits in `readings.flags` (the lead-off flag, wire
FLAG_LEAD_OFF = 0x04, among them). A store written before that column existed, read without
ingest having opened it since, has none: its readings' flags read as FLAG_BACKLOG or 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ingest.pg_read import Rows, store_snapshot

_FIELDS = ("rowid, device_id, boot_epoch, seq, captured_at, stored_at, sample_rate_hz, gain_uv,"
           " strip_id, chunk, chunks, backlog, samples")


@dataclass(frozen=True, eq=False)
class FeedReading:
    """One stored reading and its samples (int16 counts of gain_uv microvolts)."""

    rowid: int
    device_id: str
    boot_epoch: int
    seq: int
    captured_at: float  # simulated Unix time of the first sample
    stored_at: float
    sample_rate_hz: int
    gain_uv: float
    strip_id: int  # 0: continuous recording
    chunk: int
    chunks: int
    flags: int
    samples: npt.NDArray[np.int16]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz

    @property
    def end_at(self) -> float:
        """The capture time just after the last sample."""
        return self.captured_at + self.duration_s

    def millivolts(self) -> npt.NDArray[np.float64]:
        return self.samples.astype(np.float64) * self.gain_uv / 1000.0


def _has_flags(snap: Rows) -> bool:
    return any(row[1] == "flags" for row in snap.rows("PRAGMA table_info(readings)"))


def select_readings(snap: Rows, where: str, params: tuple[object, ...]) -> list[FeedReading]:
    """The readings `where` (an SQL tail with ? placeholders: WHERE, ORDER BY, LIMIT) selects,
    with their samples (ingest/store_range.py reads through this too)."""
    fields = _FIELDS + (", flags" if _has_flags(snap) else "")
    rows = snap.rows(f"SELECT {fields} FROM readings {where}", params)  # noqa: S608 -- constant SQL, values bound
    out = []
    for row in rows:
        rid, dev, boot, seq, cap, at, rate, gain, strip, chunk, chunks, backlog, blob = row[:13]
        flags = int(row[13]) if len(row) > 13 and row[13] is not None else (1 if backlog else 0)
        out.append(FeedReading(
            rowid=int(rid), device_id=str(dev), boot_epoch=int(boot), seq=int(seq),
            captured_at=float(cap), stored_at=float(at), sample_rate_hz=int(rate),
            gain_uv=float(gain), strip_id=int(strip), chunk=int(chunk), chunks=int(chunks),
            flags=flags, samples=np.frombuffer(blob, dtype=">i2").astype(np.int16)))
    return out


def readings_after(db_path: Path | str, cursor: int, limit: int) -> list[FeedReading]:
    """Up to `limit` readings with rowid > cursor, in rowid (commit) order."""
    with store_snapshot(db_path) as snap:
        return select_readings(snap, "WHERE rowid > ? ORDER BY rowid LIMIT ?", (int(cursor), int(limit)))


def device_readings(db_path: Path | str, device_id: str, boot_epoch: int, seq_lo: int,
                    seq_hi: int) -> list[FeedReading]:
    """The stored readings of one device and boot with seq_lo <= seq <= seq_hi, by seq (the
    primary key's index answers it)."""
    with store_snapshot(db_path) as snap:
        return select_readings(snap, "WHERE device_id = ? AND boot_epoch = ? AND seq BETWEEN ? AND ?"
                             " ORDER BY seq", (device_id, int(boot_epoch), int(seq_lo), int(seq_hi)))


def last_rowid(db_path: Path | str) -> int:
    """The highest rowid stored (0 for an empty or missing store)."""
    with store_snapshot(db_path) as snap:
        rows = snap.rows("SELECT MAX(rowid) FROM readings")
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0
