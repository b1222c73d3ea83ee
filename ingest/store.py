"""The durable, idempotent store of readings: ingest/ingest.sqlite (schema: docs/architecture.md).

One call, one transaction: `store_batch(accepted, quarantined, stored_at)` inserts every valid
reading keyed by (device_id, boot_epoch, seq), records every key that was already present (or
repeated inside the batch) with the same content in `duplicates` instead of storing it twice,
writes every quarantined message with its raw bytes, and commits once. It returns a
BatchResult saying which keys were newly stored and which were duplicates, so the acker can
confirm both: a duplicate is durably stored too (by an earlier commit or earlier in this one).

Same key, different content is no duplicate: it is a *conflict*. A device never makes two
readings with one key, so a second, different reading under a stored key is forged or broken
(CRC-valid readings with real devices' keys and capture times 50 years ahead were counted as
duplicates before). The first one stored is kept; the later one is quarantined with reason
`conflict` (its raw bytes, and which fields differ), counted in BatchResult.conflicts, and
never confirmed. Content is everything a reading says but how this copy was sent: not the
backlog flag (bit 0: live or from the outbox, which a genuine re-send may change) and not the
signature (flag bit 1 and its bytes: a re-send with the backlog bit is signed again, so its
signature differs; the signature is checked by validate() and never stored).

Durability: journal_mode=WAL with synchronous=FULL. An end-to-end ack tells a device it may
delete its copy, so a commit must survive a power cut, not only a kill -9. With NORMAL, WAL
commits are not fsynced until a checkpoint, so an OS crash could lose readings that were
already acknowledged. FULL fsyncs the WAL on every commit; measured here at about 0.4 ms per
commit (NORMAL: 0.02 ms), and the service commits once per batch, so the cost is small.

Threads: one SqliteStore is used by one thread at a time (the service's main loop). It is
opened with check_same_thread=False only so that a test may build it on one thread and run
the service on another.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ingest.errors import SchemaError, StoreError
from ingest.validate import Accepted, Quarantined
from wire.codec import ReadingFields
from wire.reading import FLAG_BACKLOG, FLAG_SIGNED

Key = tuple[str, int, int]  # (device_id, boot_epoch, seq)
Content = tuple[object, ...]  # CONTENT_FIELDS of one reading, the SENDING_FLAGS masked out
CONTENT_FIELDS = ("captured_at", "sample_rate_hz", "gain_uv", "n_samples", "strip_id", "chunk",
                  "chunks", "samples", "flags")
# how one copy was sent, not what the reading says: a genuine re-send may differ in these
SENDING_FLAGS = FLAG_BACKLOG | FLAG_SIGNED


def content_of(r: ReadingFields) -> Content:
    return (r.captured_at, r.sample_rate_hz, r.gain_uv, r.n_samples, r.strip_id, r.chunk,
            r.chunks, bytes(r.samples_be), r.flags & ~SENDING_FLAGS)


def _differs(old: Content, new: Content) -> str:
    return ", ".join(f for f, a, b in zip(CONTENT_FIELDS, old, new, strict=True) if a != b)

# Quarantined payloads can be up to Mosquitto's message_size_limit (256 MB by default); keep
# at most this many raw bytes of one message, and say so in its detail.
MAX_QUARANTINE_RAW = 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (device_id TEXT NOT NULL, boot_epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL, captured_at REAL NOT NULL, received_at REAL NOT NULL, stored_at REAL NOT NULL,
    sample_rate_hz INTEGER NOT NULL, gain_uv REAL NOT NULL, n_samples INTEGER NOT NULL,
    backlog INTEGER NOT NULL, strip_id INTEGER NOT NULL, chunk INTEGER NOT NULL, chunks INTEGER NOT NULL,
    samples BLOB NOT NULL,  -- big-endian int16, as on the wire
    flags INTEGER NOT NULL DEFAULT 0,  -- the wire's flag bits (backlog, signed, lead-off)
    PRIMARY KEY (device_id, boot_epoch, seq));
CREATE TABLE IF NOT EXISTS duplicates (device_id TEXT NOT NULL, boot_epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY, received_at REAL NOT NULL, topic TEXT NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, raw BLOB NOT NULL);
-- messages refused before validation (ingest/ratelimit.py), counted per device, not kept:
-- one row per device and reason, however long the flood
CREATE TABLE IF NOT EXISTS refused (device_id TEXT NOT NULL, reason TEXT NOT NULL,
    count INTEGER NOT NULL, first_at REAL NOT NULL, last_at REAL NOT NULL,
    PRIMARY KEY (device_id, reason));
"""

COLUMNS = {
    "readings": [
        "device_id", "boot_epoch", "seq", "captured_at", "received_at", "stored_at",
        "sample_rate_hz", "gain_uv", "n_samples", "backlog", "strip_id", "chunk", "chunks",
        "samples", "flags",
    ],
    "duplicates": ["device_id", "boot_epoch", "seq", "received_at"],
    "quarantine": ["id", "received_at", "topic", "reason", "detail", "raw"],
    "refused": ["device_id", "reason", "count", "first_at", "last_at"],
}

_INSERT_READING = (
    "INSERT OR IGNORE INTO readings (device_id, boot_epoch, seq, captured_at, received_at,"
    " stored_at, sample_rate_hz, gain_uv, n_samples, backlog, strip_id, chunk, chunks, samples, flags)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# One multi-row INSERT per batch rather than one execute per row: fewer round trips through
# the sqlite3 module (and fewer GIL hand-offs to paho's network thread). Duplicates are found
# first with one indexed lookup per chunk of keys, inside the same BEGIN IMMEDIATE
# transaction, so no other writer can slip in between.
_ROWS_PER_INSERT = 500  # 15 parameters a row: 7,500 < SQLite's 32,766 variable limit
_KEYS_PER_LOOKUP = 500


def _insert_many(n: int) -> str:
    """One INSERT of n readings; only "?" placeholders are joined in, every value is bound."""
    head = _INSERT_READING.replace("INSERT OR IGNORE", "INSERT").split(" VALUES ")[0]
    rows = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * n)
    return f"{head} VALUES {rows}"


_INSERT_DUPLICATE = (
    "INSERT INTO duplicates (device_id, boot_epoch, seq, received_at) VALUES (?, ?, ?, ?)"
)
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (received_at, topic, reason, detail, raw) VALUES (?, ?, ?, ?, ?)"
)
_UPSERT_REFUSED = (
    "INSERT INTO refused (device_id, reason, count, first_at, last_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (device_id, reason) DO UPDATE SET count = count + excluded.count,"
    " last_at = excluded.last_at"
)
RATE_LIMITED = "rate-limited"


def _by_device(keys: Iterable[Key]) -> dict[str, list[int]]:
    out: dict[str, set[int]] = {}
    for device_id, _boot, seq in keys:
        out.setdefault(device_id, set()).add(seq)
    return {d: sorted(s) for d, s in sorted(out.items())}


@dataclass(frozen=True)
class BatchResult:
    """What one committed batch did. Every key in stored or duplicates is durably stored."""

    stored: tuple[Key, ...] = ()
    duplicates: tuple[Key, ...] = ()
    quarantined: int = 0  # including the conflicts
    conflicts: tuple[Key, ...] = ()  # a stored key, different content: quarantined, never confirmed

    def stored_by_device(self) -> dict[str, list[int]]:
        return _by_device(self.stored)

    def duplicates_by_device(self) -> dict[str, list[int]]:
        return _by_device(self.duplicates)

    def confirmed_by_device(self) -> dict[str, list[int]]:
        """Seqs that may be confirmed to each device: newly stored and duplicates alike."""
        return _by_device((*self.stored, *self.duplicates))

    def merge(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            self.stored + other.stored,
            self.duplicates + other.duplicates,
            self.quarantined + other.quarantined,
            self.conflicts + other.conflicts,
        )


def _conflict(a: Accepted, old: Content, new: Content) -> Quarantined:
    dev, boot, seq = a.key
    return Quarantined(a.topic, "conflict",
                       f"({dev}, boot {boot}, seq {seq}) is already stored with other content"
                       f" (differs in: {_differs(old, new)}); the first is kept", a.raw, a.received_at)


class Store(Protocol):
    def store_batch(
        self, accepted: Sequence[Accepted], quarantined: Sequence[Quarantined], stored_at: float,
        refused: Mapping[str, int] | None = None,
    ) -> BatchResult: ...

    def close(self) -> None: ...


class SqliteStore:
    """The SQLite implementation of Store (WAL, synchronous=FULL)."""

    def __init__(self, path: Path, *, synchronous: str = "FULL",
                 busy_timeout_ms: int = 10_000) -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreError(f"synchronous={synchronous!r}: use FULL, EXTRA or NORMAL")
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False,
                timeout=busy_timeout_ms / 1000,
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        self._check_schema()

    def _check_schema(self) -> None:
        for table, expected in COLUMNS.items():
            cols = [row[1] for row in self._db.execute(f"PRAGMA table_info({table})")]
            if table == "readings" and cols == expected[:-1]:  # a store from before `flags`
                self._db.execute("ALTER TABLE readings ADD COLUMN flags INTEGER NOT NULL DEFAULT 0")
                cols = expected
            if cols != expected:
                raise SchemaError(
                    f"{self.path}: table {table} has columns {cols}, expected {expected}"
                )

    def store_batch(
        self, accepted: Sequence[Accepted], quarantined: Sequence[Quarantined], stored_at: float,
        refused: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """Store one batch in one transaction; StoreError (and nothing committed) on failure.
        `refused`: per device, messages of this batch the rate limit refused (counted only)."""
        stored: list[Key] = []
        dups: list[Key] = []
        conflicts: list[tuple[Key, Quarantined]] = []
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                existing = self._existing([a.key for a in accepted])
                rows: list[tuple[object, ...]] = []
                dup_rows: list[tuple[object, ...]] = []
                for a in accepted:
                    r = a.fields
                    content = content_of(r)
                    if r.key in existing:
                        if existing[r.key] != content:
                            conflicts.append((r.key, _conflict(a, existing[r.key], content)))
                            continue
                        dup_rows.append((r.device_id, r.boot_epoch, r.seq, a.received_at))
                        dups.append(r.key)
                        continue
                    existing[r.key] = content  # a second copy later in this batch is a duplicate
                    stored.append(r.key)
                    rows.append((
                        r.device_id, r.boot_epoch, r.seq, r.captured_at, a.received_at,
                        stored_at, r.sample_rate_hz, r.gain_uv, r.n_samples,
                        int(r.backlog), r.strip_id, r.chunk, r.chunks,
                        r.samples_be, r.flags,
                    ))
                for i in range(0, len(rows), _ROWS_PER_INSERT):
                    part = rows[i : i + _ROWS_PER_INSERT]
                    db.execute(_insert_many(len(part)), [x for row in part for x in row])
                if dup_rows:
                    db.executemany(_INSERT_DUPLICATE, dup_rows)
                for q in (*quarantined, *(c for _, c in conflicts)):
                    raw, detail = q.raw, q.detail
                    if len(raw) > MAX_QUARANTINE_RAW:
                        detail += f" [raw kept: first {MAX_QUARANTINE_RAW} of {len(raw)} bytes]"
                        raw = raw[:MAX_QUARANTINE_RAW]
                    db.execute(_INSERT_QUARANTINE, (q.received_at, q.topic, q.reason, detail, raw))
                for dev, n in (refused or {}).items():
                    db.execute(_UPSERT_REFUSED, (dev, RATE_LIMITED, n, stored_at, stored_at))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OverflowError, ValueError, TypeError) as exc:
            what = f"{len(accepted)} readings + {len(quarantined)} quarantined"
            raise StoreError(f"storing a batch of {what} failed: {exc}") from exc
        return BatchResult(tuple(stored), tuple(dups), len(quarantined) + len(conflicts),
                           tuple(k for k, _ in conflicts))

    def _existing(self, keys: Sequence[Key]) -> dict[Key, Content]:
        """The content of those of these keys that are already stored: one indexed join per
        chunk of keys."""
        found: dict[Key, Content] = {}
        unique = list(dict.fromkeys(keys))
        cols = ", ".join(f"r.{c}" for c in CONTENT_FIELDS)
        for i in range(0, len(unique), _KEYS_PER_LOOKUP):
            part = unique[i : i + _KEYS_PER_LOOKUP]
            keys_table = ",".join(["(?,?,?)"] * len(part))  # placeholders only: keys are bound
            sql = (
                f"SELECT r.device_id, r.boot_epoch, r.seq, {cols} FROM (VALUES {keys_table})"  # noqa: S608 -- see above
                " AS v JOIN readings AS r ON r.device_id = v.column1"
                " AND r.boot_epoch = v.column2 AND r.seq = v.column3"
            )
            for row in self._db.execute(sql, [x for k in part for x in k]).fetchall():
                content = (*row[3:-1], int(row[-1]) & ~SENDING_FLAGS)
                found[(str(row[0]), int(row[1]), int(row[2]))] = tuple(
                    bytes(v) if isinstance(v, bytes | memoryview) else v for v in content)
        return found

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as exc:
            raise StoreError(f"closing {self.path}: {exc}") from exc
