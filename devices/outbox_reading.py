"""What fleet/outbox.sqlite knows of ONE reading of one device, for `ecgpipe inspect reading`.

    outbox_reading(db, "hc-0001", 72) -> OutboxReading   the device's counter, the outbox row
                                                          (with its payload) and the eviction
                                                          log's entry, from one snapshot
    device_ids(db) -> list[str]                           every device the outbox knows

Read like devices/outbox_view.py: one read-only snapshot (ecgcore.sqlite_snapshot), a missing
file reads as empty, a file that is not a readable database raises OutboxError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devices.errors import OutboxError
from ecgcore.sqlite_snapshot import SnapshotError, read_snapshot
from wire import Reading, WireError, decode_reading


@dataclass(frozen=True)
class OutboxRow:
    """The reading's row in the outbox: it is buffered, waiting for its confirmation."""

    boot_epoch: int
    captured_at: float
    enqueued_at: float
    attempts: int  # copies published so far
    last_sent_at: float | None  # None: never published
    payload: bytes  # the encoded reading (wire.codec), as it is sent

    def reading(self) -> Reading:
        """The payload decoded; a payload that does not decode is an OutboxError."""
        try:
            return decode_reading(self.payload)
        except WireError as exc:
            raise OutboxError(f"the outbox row's payload does not decode: {exc}") from exc


@dataclass(frozen=True)
class EvictionRow:
    """The reading's entry in the eviction log: the outbox let go of it undelivered."""

    boot_epoch: int
    captured_at: float
    reason: str  # outbox-full:drop-oldest | outbox-full:reject-new
    evicted_at: float


@dataclass(frozen=True)
class OutboxReading:
    """One seq of one device as the outbox file sees it. `known` is False when the device has
    no row in `devices` (then every other field is empty)."""

    device_id: str
    seq: int
    known: bool
    boot_epoch: int | None = None  # the device's current boot
    next_seq: int = 0  # readings generated so far: seqs 0..next_seq-1
    row: OutboxRow | None = None
    eviction: EvictionRow | None = None

    @property
    def generated(self) -> bool:
        return self.known and 0 <= self.seq < self.next_seq


def outbox_reading(db_path: Path | str, device_id: str, seq: int) -> OutboxReading:
    """The device's counter, outbox row and eviction entry for `seq`, from one snapshot."""
    try:
        with read_snapshot(db_path) as snap:
            dev = snap.rows("SELECT boot_epoch, next_seq FROM devices WHERE device_id = ?",
                            (device_id,))
            rows = snap.rows("SELECT boot_epoch, captured_at, enqueued_at, attempts, last_sent_at,"
                             " payload FROM outbox WHERE device_id = ? AND seq = ?", (device_id, seq))
            evs = snap.rows("SELECT boot_epoch, captured_at, reason, evicted_at FROM evictions"
                            " WHERE device_id = ? AND seq = ?", (device_id, seq))
    except SnapshotError as exc:
        raise OutboxError(str(exc)) from exc
    if not dev:
        return OutboxReading(device_id, seq, known=False)
    row = None
    if rows:
        boot, cap, enq, attempts, last, payload = rows[0]
        row = OutboxRow(int(boot), float(cap), float(enq), int(attempts),
                        None if last is None else float(last), bytes(payload))
    eviction = None
    if evs:
        boot, cap, reason, at = evs[0]
        eviction = EvictionRow(int(boot), float(cap), str(reason), float(at))
    return OutboxReading(device_id, seq, known=True, boot_epoch=int(dev[0][0]),
                         next_seq=int(dev[0][1]), row=row, eviction=eviction)


def device_ids(db_path: Path | str) -> list[str]:
    """Every device id in the outbox's `devices` table, sorted."""
    try:
        with read_snapshot(db_path) as snap:
            return [str(r[0]) for r in snap.rows("SELECT device_id FROM devices ORDER BY device_id")]
    except SnapshotError as exc:
        raise OutboxError(str(exc)) from exc
