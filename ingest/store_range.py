"""Read-only: a device's stored readings over a time range, with their samples, in capture order.

What the clinic side reads (exports, the API, the live page): the same snapshot rules as
ingest/store_view.py (one read transaction; SQLite or PostgreSQL as the state dir's store says).
Times are the readings' capture times (simulated Unix seconds of their first sample); a reading
is in [start, end) when its first sample is. Gaps between readings are the caller's to show:
nothing here joins them.
"""

from __future__ import annotations

from pathlib import Path

from ingest.pg_read import store_snapshot
from ingest.store_feed import FeedReading, select_readings

MAX_READINGS = 100_000  # one call's bound: at 1-s chunks, more than a day of one device


StoredReading = FeedReading  # one stored reading with its samples (and its rowid, unused here)


def device_readings(db_path: Path | str, device_id: str, start: float | None = None,
                    end: float | None = None, limit: int = MAX_READINGS) -> list[StoredReading]:
    """The device's readings captured in [start, end) (None: unbounded), by capture time then
    seq, at most `limit` (the earliest)."""
    where = "WHERE device_id = ?"
    params: list[object] = [device_id]
    if start is not None:
        where += " AND captured_at >= ?"
        params.append(float(start))
    if end is not None:
        where += " AND captured_at < ?"
        params.append(float(end))
    with store_snapshot(db_path) as snap:
        return select_readings(snap, where + " ORDER BY captured_at, seq LIMIT ?", (*params, int(limit)))


def device_ids(db_path: Path | str) -> list[str]:
    """Every device with at least one stored reading, sorted."""
    with store_snapshot(db_path) as snap:
        return sorted(str(d) for (d,) in snap.rows("SELECT DISTINCT device_id FROM readings", ()))


def last_captured(db_path: Path | str) -> dict[str, tuple[float, int]]:
    """Per device: (capture time of its newest stored reading, readings stored)."""
    with store_snapshot(db_path) as snap:
        rows = snap.rows("SELECT device_id, MAX(captured_at), COUNT(*) FROM readings GROUP BY device_id", ())
    return {str(d): (float(at), int(n)) for d, at, n in rows}
