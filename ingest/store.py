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
from collections.abc import Mapping, Sequence
from pathlib import Path

from ingest.errors import SchemaError, StoreError
from ingest.store_common import (
    COLUMNS,
    CONTENT_FIELDS,
    MAX_QUARANTINE_RAW,
    RATE_LIMITED,
    BatchResult,
    Content,
    Key,
    Store,
    content_of,
    plan_batch,
    stored_content,
)
from ingest.validate import Accepted, Quarantined

# The shared helpers live in ingest/store_common.py (the PostgreSQL store uses them too); they
# are still importable from here.
__all__ = ["COLUMNS", "MAX_QUARANTINE_RAW", "RATE_LIMITED", "SCHEMA", "BatchResult", "Content",
           "Key", "SqliteStore", "Store", "content_of"]

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
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                # a second copy later in this batch is a duplicate (or a conflict) of the first
                plan = plan_batch(accepted, quarantined, self._existing([a.key for a in accepted]),
                                  stored_at)
                rows = plan.rows
                for i in range(0, len(rows), _ROWS_PER_INSERT):
                    part = rows[i : i + _ROWS_PER_INSERT]
                    db.execute(_insert_many(len(part)), [x for row in part for x in row])
                if plan.dup_rows:
                    db.executemany(_INSERT_DUPLICATE, plan.dup_rows)
                for q in plan.quarantine_rows:
                    db.execute(_INSERT_QUARANTINE, q)
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
        return plan.result()

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
                found[(str(row[0]), int(row[1]), int(row[2]))] = stored_content(row[3:])
        return found

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as exc:
            raise StoreError(f"closing {self.path}: {exc}") from exc
