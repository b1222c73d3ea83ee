"""The analysis store: DIR/analysis/analysis.sqlite, written by the analysis process only.

```sql
CREATE TABLE events (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, kind TEXT NOT NULL,
    onset REAL NOT NULL,       -- capture time the condition began
    last_seen REAL NOT NULL,   -- capture time it was last seen (its end, unless open)
    open INTEGER NOT NULL,     -- 1: it held to the end of the signal it was seen in
    raised_at REAL NOT NULL,   -- analysis clock when first stored
    updated_at REAL NOT NULL, evidence TEXT NOT NULL);  -- JSON: HR, RR statistics
CREATE TABLE beats (device_id TEXT NOT NULL, t REAL NOT NULL,  -- capture time of an R peak
    PRIMARY KEY (device_id, t)) WITHOUT ROWID;
CREATE TABLE segments (device_id TEXT NOT NULL, boot_epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    t0 REAL NOT NULL, t1 REAL NOT NULL, strip_id INTEGER NOT NULL, readable INTEGER NOT NULL,
    quality REAL, lead_off INTEGER NOT NULL, analysed_at REAL NOT NULL,
    PRIMARY KEY (device_id, boot_epoch, seq));   -- one row per analysed reading
CREATE TABLE state (key TEXT PRIMARY KEY, value REAL NOT NULL);
    -- cursor (the ingest store's rowid analysed up to), analysed, batches, store_rowid,
    -- updated_at, last_stored_at
CREATE TABLE devices (device_id TEXT PRIMARY KEY) WITHOUT ROWID;   -- every device analysed
```

Every query a batch makes is answered by a primary key or `segments_by_time` (device_id, t0):
a device's history can hold 259,200 segments after 72 h of 1-s readings.

One batch, one transaction (`with store.batch():` BEGIN IMMEDIATE ... COMMIT): its segments,
beats, events and the advanced cursor commit together, so a kill -9 at any point leaves either
the whole batch or none of it, and the restarted process redoes exactly the batches that were
not committed. WAL with synchronous=FULL, like the ingest store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import StoreError
from analysis.merge import StoredEvent
from analysis.model import Segment

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, kind TEXT NOT NULL,
    onset REAL NOT NULL, last_seen REAL NOT NULL, open INTEGER NOT NULL, raised_at REAL NOT NULL,
    updated_at REAL NOT NULL, evidence TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_device ON events (device_id, kind, onset);
CREATE TABLE IF NOT EXISTS beats (device_id TEXT NOT NULL, t REAL NOT NULL,
    PRIMARY KEY (device_id, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (device_id TEXT NOT NULL, boot_epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL, t0 REAL NOT NULL, t1 REAL NOT NULL, strip_id INTEGER NOT NULL,
    readable INTEGER NOT NULL, quality REAL, lead_off INTEGER NOT NULL, analysed_at REAL NOT NULL,
    PRIMARY KEY (device_id, boot_epoch, seq));
CREATE INDEX IF NOT EXISTS segments_by_time ON segments (device_id, t0);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""
EVENT_COLUMNS = "id, device_id, kind, onset, last_seen, open, raised_at, updated_at, evidence"
SEGMENT_COLUMNS = "device_id, boot_epoch, seq, t0, t1, strip_id, readable, quality, lead_off"
LONGEST_READING_S = 300.0  # segments starting this long before a window may still reach into it


def event_from_row(row: Sequence[Any]) -> StoredEvent:
    i, dev, kind, onset, last, is_open, raised, updated, evidence = row
    return StoredEvent(int(i), str(dev), str(kind), float(onset), float(last), bool(is_open),
                       float(raised), float(updated), json.loads(evidence))


def segment_from_row(row: Sequence[Any]) -> Segment:
    dev, boot, seq, t0, t1, strip, readable, quality, lead_off = row
    return Segment(str(dev), int(boot), int(seq), float(t0), float(t1), int(strip), bool(readable),
                   None if quality is None else float(quality), bool(lead_off))


class AnalysisStore:
    """The writer. Every method but `batch`, `state` and `close` runs inside `batch()`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the analysis store {self.path}: {exc}") from exc

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot begin a batch: {exc}") from exc
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def state(self) -> dict[str, float]:
        return {str(k): float(v) for k, v in self._rows("SELECT key, value FROM state")}

    def set_state(self, values: dict[str, float]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                             list(values.items()))

    def analysed_keys(self, device_id: str, keys: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
        """Which of these (boot_epoch, seq) of the device have a segment already."""
        found: set[tuple[int, int]] = set()
        for boot in sorted({b for b, _ in keys}):
            seqs = [s for b, s in keys if b == boot]
            rows = self._rows("SELECT seq FROM segments WHERE device_id = ? AND boot_epoch = ?"
                              " AND seq BETWEEN ? AND ?", (device_id, boot, min(seqs), max(seqs)))
            found |= {(boot, int(r[0])) for r in rows}
        return found & set(keys)

    def note_device(self, device_id: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO devices (device_id) VALUES (?)", (device_id,))

    def put_segment(self, seg: Segment, now: float) -> None:
        self._db.execute(
            f"INSERT OR REPLACE INTO segments ({SEGMENT_COLUMNS}, analysed_at)"  # noqa: S608 -- constant column list
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seg.device_id, seg.boot_epoch, seg.seq, seg.t0, seg.t1, seg.strip_id, int(seg.readable),
             seg.quality, int(seg.lead_off), now))

    def segments(self, device_id: str, t0: float, t1: float) -> list[Segment]:
        rows = self._rows(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE device_id = ?"  # noqa: S608 -- constant column list
                          " AND t0 >= ? AND t0 < ? AND t1 > ? ORDER BY t0",
                          (device_id, t0 - LONGEST_READING_S, t1, t0))
        return [segment_from_row(r) for r in rows]

    def latest_t1(self, device_id: str) -> float:
        # the segment that starts last ends last (a device's readings do not overlap)
        rows = self._rows("SELECT t1 FROM segments WHERE device_id = ? ORDER BY t0 DESC LIMIT 1",
                          (device_id,))
        return float(rows[0][0]) if rows and rows[0][0] is not None else float("-inf")

    def beats(self, device_id: str, t0: float, t1: float) -> npt.NDArray[np.float64]:
        rows = self._rows("SELECT t FROM beats WHERE device_id = ? AND t >= ? AND t < ? ORDER BY t",
                          (device_id, t0, t1))
        return np.asarray([r[0] for r in rows], dtype=np.float64)

    def add_beats(self, device_id: str, times: npt.NDArray[np.float64], refractory_s: float) -> int:
        """Insert each beat that has no stored beat within refractory_s; returns how many."""
        if times.size == 0:
            return 0
        near = self.beats(device_id, float(times[0]) - refractory_s, float(times[-1]) + refractory_s)
        fresh = [float(t) for t in times if near.size == 0
                 or float(np.min(np.abs(near - t))) >= refractory_s]
        self._db.executemany("INSERT OR IGNORE INTO beats (device_id, t) VALUES (?, ?)",
                             [(device_id, t) for t in fresh])
        return len(fresh)

    def events_near(self, device_id: str, kind: str, t0: float, t1: float) -> list[StoredEvent]:
        rows = self._rows(f"SELECT {EVENT_COLUMNS} FROM events WHERE device_id = ? AND kind = ?"  # noqa: S608 -- constant column list
                          " AND onset <= ? AND last_seen >= ? ORDER BY raised_at, id",
                          (device_id, kind, t1, t0))
        return [event_from_row(r) for r in rows]

    def write_event(self, ev: StoredEvent, drop: Sequence[int]) -> int:
        doc = json.dumps(ev.evidence, sort_keys=True)
        values = (ev.device_id, ev.kind, ev.onset, ev.last_seen, int(ev.open), ev.raised_at,
                  ev.updated_at, doc)
        if ev.id is None:
            cur = self._db.execute("INSERT INTO events (device_id, kind, onset, last_seen, open,"
                                   " raised_at, updated_at, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                   values)
            new_id = int(cur.lastrowid or 0)
        else:
            self._db.execute("UPDATE events SET device_id = ?, kind = ?, onset = ?, last_seen = ?,"
                             " open = ?, raised_at = ?, updated_at = ?, evidence = ? WHERE id = ?",
                             (*values, ev.id))
            new_id = ev.id
        self._db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in drop])
        return new_id

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as exc:
            raise StoreError(f"closing {self.path}: {exc}") from exc
