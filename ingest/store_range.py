"""Read-only: a device's stored readings over a time range, with their samples, in capture order.

What the clinic side reads (exports, the API, the live page): the same snapshot rules as
ingest/store_view.py (one read transaction; SQLite or PostgreSQL as the state dir's store says).
Times are the readings' capture times (simulated Unix seconds of their first sample); a reading
is in [start, end) when its first sample is. Gaps between readings are the caller's to show:
nothing here joins them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ingest.pg_read import store_snapshot

MAX_READINGS = 100_000  # one call's bound: at 1-s chunks, more than a day of one device


@dataclass(frozen=True, eq=False)
class StoredReading:
    """One stored reading with its ECG: int16 counts of `gain_uv` microvolts."""

    device_id: str
    boot_epoch: int
    seq: int
    captured_at: float  # simulated Unix time of the first sample
    stored_at: float
    sample_rate_hz: int
    gain_uv: float
    samples: npt.NDArray[np.int16]
    flags: int  # the wire's flag bits (wire.FLAG_*: backlog, signed, lead-off)
    strip_id: int
    chunk: int
    chunks: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz if self.sample_rate_hz else 0.0

    @property
    def end_at(self) -> float:
        """The capture time just after the last sample."""
        return self.captured_at + self.duration_s

    def millivolts(self) -> npt.NDArray[np.float64]:
        return self.samples.astype(np.float64) * self.gain_uv / 1000.0


def device_readings(db_path: Path | str, device_id: str, start: float | None = None,
                    end: float | None = None, limit: int = MAX_READINGS) -> list[StoredReading]:
    """The device's readings captured in [start, end) (None: unbounded), by capture time then
    seq, at most `limit` (the earliest)."""
    sql = ("SELECT device_id, boot_epoch, seq, captured_at, stored_at, sample_rate_hz, gain_uv,"
           " samples, flags, strip_id, chunk, chunks FROM readings WHERE device_id = ?")
    params: list[object] = [device_id]
    if start is not None:
        sql += " AND captured_at >= ?"
        params.append(float(start))
    if end is not None:
        sql += " AND captured_at < ?"
        params.append(float(end))
    sql += " ORDER BY captured_at, seq LIMIT ?"
    params.append(int(limit))
    with store_snapshot(db_path) as snap:
        rows = snap.rows(sql, tuple(params))
    return [StoredReading(device_id=str(dev), boot_epoch=int(boot), seq=int(seq), captured_at=float(cap),
                          stored_at=float(at), sample_rate_hz=int(rate), gain_uv=float(gain),
                          samples=np.frombuffer(bytes(blob), dtype=">i2").astype(np.int16),
                          flags=int(flags), strip_id=int(strip), chunk=int(chunk), chunks=int(chunks))
            for dev, boot, seq, cap, at, rate, gain, blob, flags, strip, chunk, chunks in rows]


def device_ids(db_path: Path | str) -> list[str]:
    """Every device with at least one stored reading, sorted."""
    with store_snapshot(db_path) as snap:
        return sorted(str(d) for (d,) in snap.rows("SELECT DISTINCT device_id FROM readings", ()))


def last_captured(db_path: Path | str) -> dict[str, tuple[float, int]]:
    """Per device: (capture time of its newest stored reading, readings stored)."""
    with store_snapshot(db_path) as snap:
        rows = snap.rows("SELECT device_id, MAX(captured_at), COUNT(*) FROM readings GROUP BY device_id", ())
    return {str(d): (float(at), int(n)) for d, at, n in rows}
