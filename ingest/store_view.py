"""Read-only queries on ingest/ingest.sqlite, for the lab's ledger, report and inspect.

Every function reads one read-only snapshot (ecgcore.sqlite_snapshot: `file:...?mode=ro`,
one read transaction; or, when the state dir's store is PostgreSQL, one read-only REPEATABLE
READ transaction: ingest/pg_read.py decides which, from `<folder of db_path>/store.json`), so
it never creates, locks for writing or alters the file; it works
while the service is writing (WAL readers see the last committed state), after a kill -9
(left-over -wal/-shm files are read), and on a copied state dir. A missing file, or a file
without the tables yet, gives empty results; a file that is not a readable database raises
StoreError.

The lab's history and report read the store only through this module: `stored_readings`,
`duplicate_readings` and `quarantine_events` (or all three from one snapshot with
`store_contents`) for the checker, `reading_samples` for one reading's ECG.

Seqs never repeat for a device across boots, so per-device sets and gaps ignore boot_epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ingest.pg_read import store_snapshot
from wire import WireError, device_from_topic

DeviceStats = dict[str, Any]


Query = Callable[..., list[tuple[Any, ...]]]


@contextmanager
def _snapshot(db_path: Path | str) -> Iterator[Query]:
    """A query function over one consistent read snapshot of the store (or an empty one).
    A file that is not a readable database, read or written here, raises StoreError; so does
    a PostgreSQL store (ingest/pg_read.py: store.json) that cannot be read."""
    with store_snapshot(db_path) as snap:
        yield snap.rows


def _query(db_path: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with _snapshot(db_path) as q:
        return q(sql, params)


def stored_seqs(db_path: Path | str) -> dict[str, set[int]]:
    """Every stored seq, per device (the ledger's S)."""
    out: dict[str, set[int]] = {}
    for device_id, seq in _query(db_path, "SELECT device_id, seq FROM readings"):
        out.setdefault(device_id, set()).add(seq)
    return out


def _missing_ranges(seqs: np.ndarray, upto: int) -> list[list[int]]:
    """Inclusive [lo, hi] ranges of 0..upto that are not in sorted unique `seqs`."""
    if upto < 0:
        return []
    seqs = seqs[seqs <= upto]
    edges = np.concatenate(([-1], seqs, [upto + 1]))
    gaps = np.nonzero(np.diff(edges) > 1)[0]
    return [[int(edges[i] + 1), int(edges[i + 1] - 1)] for i in gaps]


def _topic_device(topic: str) -> str | None:
    try:
        return device_from_topic(topic)
    except WireError:
        return None


def device_stats(db_path: Path | str,
                 generated: Mapping[str, int] | None = None) -> dict[str, DeviceStats]:
    """Per device: stored, duplicates, quarantined, missing_ranges, first_seq, last_seq,
    backlog_stored.

    missing_ranges are the inclusive [lo, hi] gaps in 0..last_seq; with `generated`
    ({device_id: readings generated = next_seq}) they run to generated-1 instead, and a
    device that generated readings but has none stored is listed with everything missing.
    quarantined counts quarantine rows whose topic names the device.
    """
    generated = dict(generated or {})
    with _snapshot(db_path) as q:
        rows = q("SELECT device_id, seq, backlog FROM readings ORDER BY device_id, seq")
        dups = dict(q("SELECT device_id, COUNT(*) FROM duplicates GROUP BY device_id"))
        by_topic = q("SELECT topic, COUNT(*) FROM quarantine GROUP BY topic")
        refused = _refused(q)
    seqs: dict[str, list[int]] = {}
    backlog: dict[str, int] = {}
    for device_id, seq, bl in rows:
        seqs.setdefault(device_id, []).append(seq)
        backlog[device_id] = backlog.get(device_id, 0) + (1 if bl else 0)
    quarantined: dict[str, int] = {}
    for topic, n in by_topic:
        dev = _topic_device(topic)
        if dev is not None:
            quarantined[dev] = quarantined.get(dev, 0) + n
    for dev, n in refused.items():
        quarantined[dev] = quarantined.get(dev, 0) + n
    out: dict[str, DeviceStats] = {}
    for device_id in sorted(set(seqs) | set(dups) | set(quarantined) | set(generated)):
        arr = np.unique(np.asarray(seqs.get(device_id, []), dtype=np.int64))
        last = int(arr[-1]) if arr.size else None
        upto = last if last is not None else -1
        if device_id in generated:
            upto = max(upto, int(generated[device_id]) - 1)
        out[device_id] = {
            "stored": int(arr.size),
            "duplicates": int(dups.get(device_id, 0)),
            "quarantined": quarantined.get(device_id, 0),
            "missing_ranges": _missing_ranges(arr, upto),
            "first_seq": int(arr[0]) if arr.size else None,
            "last_seq": last,
            "backlog_stored": backlog.get(device_id, 0),
        }
    return out


def quarantine_rows(db_path: Path | str, limit: int = 100,
                    raw_prefix: int = 32) -> list[dict[str, Any]]:
    """The newest `limit` quarantined messages, newest first, with the first `raw_prefix`
    bytes of each as hex and the stored raw size."""
    rows = _query(
        db_path,
        "SELECT id, received_at, topic, reason, detail, substr(raw, 1, ?), length(raw)"
        " FROM quarantine ORDER BY id DESC LIMIT ?",
        (int(raw_prefix), int(limit)),
    )
    return [
        {"id": i, "received_at": at, "topic": topic, "reason": reason, "detail": detail,
         "raw_hex": bytes(prefix or b"").hex(), "size": size}  # SQLite: substr of an empty blob is NULL
        for i, at, topic, reason, detail, prefix, size in rows
    ]


def quarantine_counts(db_path: Path | str) -> dict[str, int]:
    """How many messages were quarantined, per reason (the rate limit's refusals as
    "rate-limited", though only counted, not kept)."""
    with _snapshot(db_path) as q:
        counts = dict(q("SELECT reason, COUNT(*) FROM quarantine GROUP BY reason"))
        if _has_refused(q):
            for (reason, n) in q("SELECT reason, SUM(count) FROM refused GROUP BY reason"):
                counts[reason] = counts.get(reason, 0) + int(n)
    return dict(sorted(counts.items()))


def _refused(q: Query) -> dict[str, int]:
    """Messages the rate limit refused, per device (the refused table: counts, not messages)."""
    if not _has_refused(q):
        return {}
    return {dev: int(n) for dev, n in q("SELECT device_id, SUM(count) FROM refused GROUP BY device_id")}


def _has_refused(q: Query) -> bool:
    """A store from before the rate limit has no refused table (and refused nothing)."""
    return bool(q("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refused'"))


def refused_counts(db_path: Path | str) -> dict[str, int]:
    with _snapshot(db_path) as q:
        return _refused(q)


def latencies(db_path: Path | str, *, from_end_of_chunk: bool = False,
              captured_between: tuple[float, float] | None = None) -> np.ndarray:
    """stored_at - captured_at of every stored reading, in (simulated) seconds.

    captured_at is the capture time of the chunk's FIRST sample, so by default a 1-s chunk's
    latency includes the 1 s it took to record it. from_end_of_chunk=True subtracts the
    chunk's duration (n_samples / sample_rate_hz): the delay after the last sample existed.
    captured_between=(lo, hi): only the readings captured in [lo, hi) (a measurement window).
    """
    sql = "SELECT stored_at - captured_at FROM readings"
    if from_end_of_chunk:
        sql = ("SELECT stored_at - captured_at - CAST(n_samples AS REAL) / sample_rate_hz"
               " FROM readings")
    params: tuple[float, ...] = ()
    if captured_between is not None:
        sql += " WHERE captured_at >= ? AND captured_at < ?"
        params = (float(captured_between[0]), float(captured_between[1]))
    return np.asarray([r[0] for r in _query(db_path, sql, params)], dtype=np.float64)


def totals(db_path: Path | str) -> dict[str, Any]:
    """Whole-store counts: stored, duplicates, quarantined, devices, first/last stored_at."""
    with _snapshot(db_path) as q:
        stored = q("SELECT COUNT(*), COUNT(DISTINCT device_id), MIN(stored_at), MAX(stored_at),"
                   " SUM(backlog) FROM readings")
        dups = q("SELECT COUNT(*) FROM duplicates")
        quar = q("SELECT COUNT(*) FROM quarantine")
        refused = sum(_refused(q).values())
    n, devices, first, last, bl = stored[0] if stored else (0, 0, None, None, 0)
    return {
        "stored": n or 0,
        "duplicates": dups[0][0] if dups else 0,
        "quarantined": (quar[0][0] if quar else 0) + refused,
        "devices": devices or 0,
        "backlog_stored": bl or 0,
        "first_stored_at": first,
        "last_stored_at": last,
    }


# --- the lab's history and report -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One row of `readings`, without its samples: what the lab's history needs."""

    device_id: str
    boot_epoch: int
    seq: int
    captured_at: float  # simulated Unix time of the reading's first sample
    received_at: float | None  # when the service received it (None: not recorded)
    stored_at: float  # when its batch was committed
    n_samples: int
    sample_rate_hz: int
    backlog: bool  # sent from the device's backlog (FLAG_BACKLOG), not live

    @property
    def duration_s(self) -> float:
        """The reading's length, n_samples / sample_rate_hz (0.0 for a rate of 0)."""
        return self.n_samples / self.sample_rate_hz if self.sample_rate_hz else 0.0


class DuplicateRow(NamedTuple):
    """One row of `duplicates`: a copy of an already stored key arrived again."""

    device_id: str
    boot_epoch: int
    seq: int
    received_at: float


class QuarantineEvent(NamedTuple):
    """One row of `quarantine`, without its detail and raw bytes."""

    received_at: float
    topic: str
    reason: str

    @property
    def device_id(self) -> str | None:
        """The device the topic names, or None for a topic that names none."""
        return _topic_device(self.topic)


class StoreContents(NamedTuple):
    """The parts of the store the lab's history reads, from one snapshot."""

    stored: list[StoredRow]
    duplicates: list[DuplicateRow]
    quarantined: list[QuarantineEvent]
    refused: dict[str, int]  # rate-limited, per device (counts only)


@dataclass(frozen=True, eq=False)
class ReadingSamples:
    """One stored reading's ECG: int16 counts of `gain_uv` microvolts at `sample_rate_hz`."""

    samples: npt.NDArray[np.int16]
    gain_uv: float
    sample_rate_hz: int

    def millivolts(self) -> npt.NDArray[np.float64]:
        """The samples in mV: counts × gain_uv / 1000."""
        return self.samples.astype(np.float64) * self.gain_uv / 1000.0


def _stored_rows(q: Query) -> list[StoredRow]:
    rows = q("SELECT device_id, boot_epoch, seq, captured_at, received_at, stored_at, n_samples,"
             " sample_rate_hz, backlog FROM readings ORDER BY stored_at, rowid")
    return [
        StoredRow(device_id=str(dev), boot_epoch=int(boot), seq=int(seq), captured_at=float(cap),
                  received_at=None if recv is None else float(recv), stored_at=float(at),
                  n_samples=int(n), sample_rate_hz=int(rate), backlog=bool(bl))
        for dev, boot, seq, cap, recv, at, n, rate, bl in rows
    ]


def _duplicate_rows(q: Query) -> list[DuplicateRow]:
    rows = q("SELECT device_id, boot_epoch, seq, received_at FROM duplicates"
             " ORDER BY received_at, rowid")
    return [DuplicateRow(str(dev), int(boot), int(seq), float(at)) for dev, boot, seq, at in rows]


def _quarantine_events(q: Query) -> list[QuarantineEvent]:
    rows = q("SELECT received_at, topic, reason FROM quarantine ORDER BY id")
    return [QuarantineEvent(float(at), str(topic), str(reason)) for at, topic, reason in rows]


def stored_readings(db_path: Path | str) -> list[StoredRow]:
    """Every stored reading (without samples), in store order: by stored_at, then insertion."""
    with _snapshot(db_path) as q:
        return _stored_rows(q)


def keys_after(db_path: Path | str, rowid: int) -> list[tuple[str, int, int]]:
    """(device_id, boot_epoch, seq) of the readings stored after row `rowid` (a reader that
    walks the store in rowid order, as the analysis stage does, has not seen these)."""
    rows = _query(db_path, "SELECT device_id, boot_epoch, seq FROM readings WHERE rowid > ?"
                           " ORDER BY rowid", (int(rowid),))
    return [(str(d), int(b), int(q)) for d, b, q in rows]


def count_after(db_path: Path | str, rowid: int) -> int:
    """How many readings were stored after row `rowid`."""
    rows = _query(db_path, "SELECT COUNT(*) FROM readings WHERE rowid > ?", (int(rowid),))
    return int(rows[0][0]) if rows else 0


def duplicate_readings(db_path: Path | str) -> list[DuplicateRow]:
    """Every duplicate arrival, by received_at, then insertion."""
    with _snapshot(db_path) as q:
        return _duplicate_rows(q)


def quarantine_events(db_path: Path | str) -> list[QuarantineEvent]:
    """Every quarantined message's (received_at, topic, reason), in arrival order (by id)."""
    with _snapshot(db_path) as q:
        return _quarantine_events(q)


def store_contents(db_path: Path | str) -> StoreContents:
    """stored_readings, duplicate_readings and quarantine_events from ONE snapshot, so that
    the three agree even while the service keeps writing."""
    with _snapshot(db_path) as q:
        return StoreContents(_stored_rows(q), _duplicate_rows(q), _quarantine_events(q), _refused(q))


def reading_samples(db_path: Path | str, device_id: str, boot_epoch: int,
                    seq: int) -> ReadingSamples | None:
    """The samples (big-endian int16 in the store, native int16 here), gain_uv and
    sample_rate_hz of one stored reading; None when the store does not hold it."""
    rows = _query(db_path, "SELECT samples, gain_uv, sample_rate_hz FROM readings"
                           " WHERE device_id = ? AND boot_epoch = ? AND seq = ?",
                  (device_id, int(boot_epoch), int(seq)))
    if not rows:
        return None
    blob, gain_uv, rate = rows[0]
    return ReadingSamples(samples=np.frombuffer(blob, dtype=">i2").astype(np.int16),
                          gain_uv=float(gain_uv), sample_rate_hz=int(rate))
