"""What every ingest store shares, whatever its database: the Store protocol, BatchResult,
the content of a reading and the conflict rule, the quarantine cap, the column contract, and
the pure planning of one batch (which readings are new, duplicates or conflicts).

ingest/store.py (SQLite) and ingest/pg_store.py (PostgreSQL) both plan a batch with
`plan_batch(accepted, existing, stored_at)` once they have read, inside their write
transaction, the content of those of the batch's keys that are already stored; so the two
stores cannot disagree on what is a duplicate or a conflict. The rules themselves are
ingest/store.py's docstring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ingest.validate import Accepted, Quarantined
from wire.codec import ReadingFields
from wire.reading import FLAG_BACKLOG, FLAG_SIGNED

Key = tuple[str, int, int]  # (device_id, boot_epoch, seq)
Content = tuple[object, ...]  # CONTENT_FIELDS of one reading, the SENDING_FLAGS masked out
CONTENT_FIELDS = ("captured_at", "sample_rate_hz", "gain_uv", "n_samples", "strip_id", "chunk",
                  "chunks", "samples", "flags")
# how one copy was sent, not what the reading says: a genuine re-send may differ in these
SENDING_FLAGS = FLAG_BACKLOG | FLAG_SIGNED

# Quarantined payloads can be up to Mosquitto's message_size_limit (256 MB by default); keep
# at most this many raw bytes of one message, and say so in its detail.
MAX_QUARANTINE_RAW = 1024 * 1024

RATE_LIMITED = "rate-limited"

# The tables and columns every store has, in this order (a PostgreSQL store adds `id` to
# readings and duplicates: rowid's role there).
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


def content_of(r: ReadingFields) -> Content:
    return (r.captured_at, r.sample_rate_hz, r.gain_uv, r.n_samples, r.strip_id, r.chunk,
            r.chunks, bytes(r.samples_be), r.flags & ~SENDING_FLAGS)


def _differs(old: Content, new: Content) -> str:
    return ", ".join(f for f, a, b in zip(CONTENT_FIELDS, old, new, strict=True) if a != b)


def stored_content(values: Sequence[Any]) -> Content:
    """A Content from the CONTENT_FIELDS columns as a database returns them (flags unmasked,
    samples as bytes or memoryview)."""
    content = (*values[:-1], int(values[-1]) & ~SENDING_FLAGS)
    return tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in content)


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


Row = tuple[object, ...]


@dataclass
class BatchPlan:
    """What to write for one batch: the new readings' rows (COLUMNS["readings"] order), the
    duplicates' rows, and the quarantine rows (capped) including the conflicts."""

    rows: list[Row] = field(default_factory=list)
    dup_rows: list[Row] = field(default_factory=list)
    quarantine_rows: list[Row] = field(default_factory=list)
    stored: list[Key] = field(default_factory=list)
    dups: list[Key] = field(default_factory=list)
    conflicts: list[Key] = field(default_factory=list)

    def result(self) -> BatchResult:
        return BatchResult(tuple(self.stored), tuple(self.dups), len(self.quarantine_rows),
                           tuple(self.conflicts))


def quarantine_row(q: Quarantined) -> Row:
    """(received_at, topic, reason, detail, raw), raw cut to MAX_QUARANTINE_RAW bytes."""
    raw, detail = q.raw, q.detail
    if len(raw) > MAX_QUARANTINE_RAW:
        detail += f" [raw kept: first {MAX_QUARANTINE_RAW} of {len(raw)} bytes]"
        raw = raw[:MAX_QUARANTINE_RAW]
    return (q.received_at, q.topic, q.reason, detail, raw)


def plan_batch(accepted: Sequence[Accepted], quarantined: Sequence[Quarantined],
               existing: dict[Key, Content], stored_at: float) -> BatchPlan:
    """Classify a batch against `existing` (the stored content of its keys, read inside the
    write transaction; updated here as readings of the batch are planned, so a second copy
    later in the batch is a duplicate or a conflict of the first)."""
    plan = BatchPlan()
    conflicts: list[Quarantined] = []
    for a in accepted:
        r = a.fields
        content = content_of(r)
        if r.key in existing:
            if existing[r.key] != content:
                conflicts.append(_conflict(a, existing[r.key], content))
                plan.conflicts.append(r.key)
                continue
            plan.dup_rows.append((r.device_id, r.boot_epoch, r.seq, a.received_at))
            plan.dups.append(r.key)
            continue
        existing[r.key] = content
        plan.stored.append(r.key)
        plan.rows.append((
            r.device_id, r.boot_epoch, r.seq, r.captured_at, a.received_at,
            stored_at, r.sample_rate_hz, r.gain_uv, r.n_samples,
            int(r.backlog), r.strip_id, r.chunk, r.chunks,
            r.samples_be, r.flags,
        ))
    plan.quarantine_rows = [quarantine_row(q) for q in (*quarantined, *conflicts)]
    return plan
