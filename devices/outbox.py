"""The fleet's durable outbox: every device's unsent readings, its seq counter and evictions.

One SQLite file (`fleet/outbox.sqlite`) for the whole fleet, schema exactly as in
docs/architecture.md. One connection, used only from the fleet's single thread.

Transactions. Writes open a transaction lazily; `commit()` ends it. The fleet commits once
per loop tick for all devices, so a second of 1,000 devices is a handful of commits, not
thousands. `transaction()` is the same as a context manager.

Seq and row together. `append()` writes the outbox row and moves `devices.next_seq` in the
same transaction, so a reading that was never committed never consumed a seq: after a
kill -9 the next boot continues from the last committed seq and reuses nothing counted.

Durability choice: WAL with `synchronous=NORMAL`. A commit is then safe against the
process dying (kill -9, the lab's fault), because the WAL is in the OS page cache; it is
not safe against the machine losing power, which may roll back the last transactions
(and with them next_seq). `synchronous="FULL"` buys that too, at one fsync per commit.

Capacity. Each device may hold `capacity` rows. When full, `policy` decides:
  drop-oldest  the device's oldest row is deleted and logged in `evictions`
               with reason "outbox-full:drop-oldest"; the new reading is stored.
  reject-new   the new reading is not stored; it is logged in `evictions` with reason
               "outbox-full:reject-new". Its seq is still consumed (it was generated).

Per-device row counts are kept in memory, so the hot path never runs COUNT(*).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from devices.errors import ConfigError, OutboxError
from devices.profile import PatientProfile
from ecgcore.modes import OUTBOX_POLICIES, OutboxPolicy

REASON_DROP_OLDEST = "outbox-full:drop-oldest"
REASON_REJECT_NEW = "outbox-full:reject-new"

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, boot_epoch INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,  -- readings generated so far = next_seq (seq starts at 0)
    hr_bpm REAL, hrv REAL, noise REAL, seed INTEGER, created_at REAL);
CREATE TABLE IF NOT EXISTS outbox (device_id TEXT NOT NULL, seq INTEGER NOT NULL,
    boot_epoch INTEGER NOT NULL, captured_at REAL NOT NULL, enqueued_at REAL NOT NULL,
    payload BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_sent_at REAL,
    PRIMARY KEY (device_id, seq));
CREATE TABLE IF NOT EXISTS evictions (device_id TEXT NOT NULL, seq INTEGER NOT NULL,
    boot_epoch INTEGER NOT NULL, captured_at REAL NOT NULL, reason TEXT NOT NULL,
    evicted_at REAL NOT NULL, PRIMARY KEY (device_id, seq));
"""


class Eviction(NamedTuple):
    """One row an `append` evicted: its seq, its boot epoch and the reason logged."""

    seq: int
    boot_epoch: int
    reason: str


class Appended(NamedTuple):
    """What `append` did: whether the reading was stored, and which seq was evicted
    (with that row's boot epoch and the reason logged in `evictions`)."""

    stored: bool
    evicted_seq: int | None
    evicted_boot: int | None = None
    reason: str | None = None

    @property
    def eviction(self) -> Eviction | None:
        """The evicted row as one value, or None when nothing was evicted."""
        if self.evicted_seq is None or self.evicted_boot is None or self.reason is None:
            return None
        return Eviction(self.evicted_seq, self.evicted_boot, self.reason)


class Outbox:
    """The fleet's SQLite outbox. See the module docstring for the rules it keeps."""

    def __init__(self, path: Path, *, capacity: int = 5000,
                 policy: OutboxPolicy = OutboxPolicy.DROP_OLDEST,
                 synchronous: str = "NORMAL") -> None:
        if capacity < 1:
            raise ConfigError(f"outbox capacity must be at least 1, got {capacity}")
        if policy not in OUTBOX_POLICIES:
            raise ConfigError(f"outbox policy {policy!r} is not one of {OUTBOX_POLICIES}")
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.path = Path(path)
        self.capacity = capacity
        self.policy = OutboxPolicy(policy)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc
        self._counts: dict[str, int] = {}
        self._evicted: dict[str, int] = {}
        self._next_seq: dict[str, int] = {}
        self._load_counts()

    def _load_counts(self) -> None:
        self._counts = dict(
            self._db.execute("SELECT device_id, COUNT(*) FROM outbox GROUP BY device_id")
        )
        self._evicted = dict(
            self._db.execute("SELECT device_id, COUNT(*) FROM evictions GROUP BY device_id")
        )
        self._next_seq = {
            d: s for d, s in self._db.execute("SELECT device_id, next_seq FROM devices")
            if d in self._next_seq
        }

    # --- transactions -------------------------------------------------------------------

    def _begin(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> bool:
        """Commit the open transaction, if any. Returns whether there was one."""
        if not self._db.in_transaction:
            return False
        self._db.execute("COMMIT")
        return True

    def rollback(self) -> None:
        """Undo the open transaction and reload the in-memory bookkeeping from disk."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._load_counts()

    @contextmanager
    def transaction(self) -> Iterator[Outbox]:
        """Group writes; commit at the end, roll back if the block raises."""
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def close(self) -> None:
        """Commit what is pending and close the connection."""
        try:
            self.commit()
        finally:
            self._db.close()

    # --- devices ------------------------------------------------------------------------

    def register(self, device_id: str, profile: PatientProfile, now: float) -> tuple[int, int]:
        """Boot a device: returns (boot_epoch, next_seq).

        A new device starts at boot_epoch 1 and seq 0. An existing one gets its
        boot_epoch incremented and continues from its committed next_seq. The profile
        columns are refreshed to the one given.
        """
        self._begin()
        row = self._db.execute(
            "SELECT boot_epoch, next_seq FROM devices WHERE device_id = ?", (device_id,)
        ).fetchone()
        if row is None:
            boot_epoch, next_seq = 1, 0
            self._db.execute(
                "INSERT INTO devices (device_id, boot_epoch, next_seq, hr_bpm, hrv, noise, seed,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (device_id, boot_epoch, next_seq, profile.hr_bpm, profile.hrv, profile.noise,
                 profile.seed, now),
            )
        else:
            boot_epoch, next_seq = int(row[0]) + 1, int(row[1])
            self._db.execute(
                "UPDATE devices SET boot_epoch = ?, hr_bpm = ?, hrv = ?, noise = ?, seed = ?"
                " WHERE device_id = ?",
                (boot_epoch, profile.hr_bpm, profile.hrv, profile.noise, profile.seed, device_id),
            )
        self._next_seq[device_id] = next_seq
        return boot_epoch, next_seq

    # --- the hot path -------------------------------------------------------------------

    def append(self, device_id: str, seq: int, boot_epoch: int, captured_at: float,
               payload: bytes, now: float) -> Appended:
        """Store one reading (seq assigned by the device) and advance next_seq past it.

        `seq` must be exactly the device's next_seq. When the device is at capacity the
        policy applies (module docstring) and the eviction is logged in the same
        transaction.
        """
        expected = self._next_seq.get(device_id)
        if expected is None:
            raise OutboxError(f"device {device_id!r} is not registered")
        if seq != expected:
            raise OutboxError(f"{device_id}: seq {seq} appended, next_seq is {expected}")
        self._begin()
        evicted: int | None = None
        evicted_boot: int | None = None
        reason: str | None = None
        stored = True
        if self._counts.get(device_id, 0) >= self.capacity:
            if self.policy is OutboxPolicy.REJECT_NEW:
                reason = REASON_REJECT_NEW
                self._log_eviction(device_id, seq, boot_epoch, captured_at, reason, now)
                evicted, evicted_boot, stored = seq, boot_epoch, False
            else:
                reason = REASON_DROP_OLDEST
                evicted, evicted_boot = self._evict_oldest(device_id, now)
        if stored:
            self._db.execute(
                "INSERT INTO outbox (device_id, seq, boot_epoch, captured_at, enqueued_at, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (device_id, seq, boot_epoch, captured_at, now, payload),
            )
            self._counts[device_id] = self._counts.get(device_id, 0) + 1
        self._db.execute(
            "UPDATE devices SET next_seq = ? WHERE device_id = ?", (seq + 1, device_id)
        )
        self._next_seq[device_id] = seq + 1
        return Appended(stored, evicted, evicted_boot, reason)

    def _evict_oldest(self, device_id: str, now: float) -> tuple[int, int]:
        seq, boot_epoch, captured_at = self._db.execute(
            "SELECT seq, boot_epoch, captured_at FROM outbox WHERE device_id = ?"
            " ORDER BY seq LIMIT 1", (device_id,),
        ).fetchone()
        self._db.execute("DELETE FROM outbox WHERE device_id = ? AND seq = ?", (device_id, seq))
        self._counts[device_id] = self._counts.get(device_id, 0) - 1
        self._log_eviction(device_id, seq, boot_epoch, captured_at, REASON_DROP_OLDEST, now)
        return int(seq), int(boot_epoch)

    def _log_eviction(self, device_id: str, seq: int, boot_epoch: int, captured_at: float,
                      reason: str, now: float) -> None:
        self._db.execute(
            "INSERT INTO evictions (device_id, seq, boot_epoch, captured_at, reason, evicted_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (device_id, seq, boot_epoch, captured_at, reason, now),
        )
        self._evicted[device_id] = self._evicted.get(device_id, 0) + 1

    def delete(self, device_id: str, seqs: Iterable[int]) -> int:
        """Let go of readings (delivered as the delivery mode defines). Returns rows deleted."""
        params = [(device_id, int(s)) for s in seqs]
        if not params:
            return 0
        self._begin()
        before = self._db.total_changes
        self._db.executemany("DELETE FROM outbox WHERE device_id = ? AND seq = ?", params)
        n = self._db.total_changes - before
        self._counts[device_id] = self._counts.get(device_id, 0) - n
        return n

    def delete_ranges(self, device_id: str, ranges: Iterable[tuple[int, int]]) -> int:
        """Delete every row whose seq falls in one of the inclusive ranges."""
        return len(self.release_ranges(device_id, ranges))

    def release_ranges(self, device_id: str,
                       ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """Delete every row whose seq falls in one of the inclusive ranges; returns the
        (seq, boot_epoch) of the rows actually deleted (seqs gone already are not named)."""
        params = [(device_id, int(a), int(b)) for a, b in ranges]
        if not params:
            return []
        self._begin()
        released: list[tuple[int, int]] = []
        for p in params:
            released.extend(
                (int(s), int(b)) for s, b in self._db.execute(
                    "DELETE FROM outbox WHERE device_id = ? AND seq BETWEEN ? AND ?"
                    " RETURNING seq, boot_epoch", p,
                ).fetchall()
            )
        self._counts[device_id] = self._counts.get(device_id, 0) - len(released)
        released.sort()
        return released

    def pending(self, device_id: str, limit: int, after_seq: int = -1) -> list[tuple[int, bytes]]:
        """Up to `limit` (seq, payload) rows with seq > after_seq, oldest first."""
        return [
            (int(s), bytes(p))
            for s, p in self._db.execute(
                "SELECT seq, payload FROM outbox WHERE device_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?", (device_id, after_seq, limit),
            )
        ]

    def payloads(self, device_id: str, seqs: Sequence[int]) -> dict[int, bytes]:
        """The payloads of those seqs that are still in the outbox."""
        out: dict[int, bytes] = {}
        for s in seqs:
            row = self._db.execute(
                "SELECT payload FROM outbox WHERE device_id = ? AND seq = ?", (device_id, s)
            ).fetchone()
            if row is not None:
                out[int(s)] = bytes(row[0])
        return out

    def mark_sent(self, device_id: str, seqs: Iterable[int], at: float) -> None:
        """Record a publish attempt: attempts += 1, last_sent_at = at."""
        params = [(at, device_id, int(s)) for s in seqs]
        if not params:
            return
        self._begin()
        self._db.executemany(
            "UPDATE outbox SET attempts = attempts + 1, last_sent_at = ?"
            " WHERE device_id = ? AND seq = ?", params,
        )

    # --- counts (in memory) -------------------------------------------------------------

    def count(self, device_id: str) -> int:
        """Rows this device holds in the outbox now."""
        return self._counts.get(device_id, 0)

    def total(self) -> int:
        """Rows held by the whole fleet."""
        return sum(self._counts.values())

    def evicted(self, device_id: str | None = None) -> int:
        """Evictions logged for one device, or for the fleet."""
        if device_id is None:
            return sum(self._evicted.values())
        return self._evicted.get(device_id, 0)

    def next_seq(self, device_id: str) -> int:
        """The seq the device's next reading gets (= readings generated so far)."""
        return self._next_seq[device_id]
