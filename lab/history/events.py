"""The events of a run's history, as frozen, slotted dataclasses, and `History`, which holds them.

Times are the injected clock's simulated Unix seconds. `History` holds tuples of events, in the
order of their source (device events in file order, stored events in store order). Sources and
loaders: lab/history/load.py; the record parsers: lab/history/records.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # truth.py and beats.py import this module (or its parsers)
    from lab.history.beats import BeatSpan
    from lab.history.truth import ClinicalEvent, Patient, TruthSegment

Key = tuple[str, int, int]  # (device_id, boot_epoch, seq)

DEVICE_EVENTS = ("boot", "generated", "published", "broker_acked", "ingest_acked", "evicted")


# --- device events (history/devices.jsonl) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Boot:
    """A device (re)started; next_seq is its durable counter read back from the outbox."""

    t: float
    dev: str
    boot: int
    next_seq: int


@dataclass(frozen=True, slots=True)
class ReadingEvent:
    """Something that happened to one reading, known by its key (device, boot epoch, seq)."""

    t: float
    dev: str
    boot: int
    seq: int

    @property
    def key(self) -> Key:
        return (self.dev, self.boot, self.seq)


@dataclass(frozen=True, slots=True)
class Generated(ReadingEvent):
    """Written before the outbox commit that makes the seq durable (it may never be committed)."""

    cap: float | None = None  # captured_at of the chunk's first sample


@dataclass(frozen=True, slots=True)
class Published(ReadingEvent):
    qos: int = 1
    backlog: bool = False
    resend: str | None = None  # why this copy was sent again (devices/resend.py); None: a first copy


@dataclass(frozen=True, slots=True)
class BrokerAcked(ReadingEvent):
    pass


@dataclass(frozen=True, slots=True)
class IngestAcked(ReadingEvent):
    pass


@dataclass(frozen=True, slots=True)
class Evicted(ReadingEvent):
    reason: str = "unknown"


DeviceEvent = Boot | Generated | Published | BrokerAcked | IngestAcked | Evicted


# --- ingest events (ingest/ingest.sqlite) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored(ReadingEvent):
    """A reading committed by ingest; t is readings.stored_at."""

    captured_at: float
    received_at: float | None = None
    duration_s: float = 0.0  # n_samples / sample_rate_hz: the chunk's length
    backlog: bool = False

    @property
    def latency_s(self) -> float:
        """Capture end → commit: the delay after the chunk's last sample existed."""
        return self.t - (self.captured_at + self.duration_s)


@dataclass(frozen=True, slots=True)
class Duplicate(ReadingEvent):
    """A copy of an already stored key arrived again; t is duplicates.received_at."""


@dataclass(frozen=True, slots=True)
class QuarantinedMessage:
    t: float
    topic: str
    reason: str
    dev: str | None = None  # from the topic, when it names a device


# --- nemesis and broker ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """One fault from its start to its end (None: still active when the history ends)."""

    id: str
    fault: str  # cut | blackhole | latency | bandwidth | flap | slow | kill | term | stop | ...
    target: str  # ingest | devices | broker | ...
    start: float
    end: float | None = None
    persistence: bool | None = None  # broker process faults: was the broker persistent?

    def contains(self, t: float, *, before: float = 0.0, until: float | None = None) -> bool:
        """t in [start - before, until or end]; an open window runs forever."""
        stop = until if until is not None else self.end
        return self.start - before <= t and (stop is None or t <= stop)


@dataclass(frozen=True, slots=True)
class BrokerSample:
    """The broker's counters as known at time t (values carried forward within an incarnation;
    None until the incarnation first reported them)."""

    t: float
    incarnation: int
    stored_messages: float | None = None
    dropped: float | None = None
    retained: float | None = None

    @property
    def queued(self) -> float | None:
        """Messages the broker holds that are not retained ones (the devices' statuses are
        retained, one per device, and are no backlog); None before the first report."""
        if self.stored_messages is None:
            return None
        return self.stored_messages - (self.retained or 0.0)


# --- the whole history ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class History:
    device_events: Sequence[DeviceEvent] = ()
    stored: Sequence[Stored] = ()
    duplicates: Sequence[Duplicate] = ()
    quarantined: Sequence[QuarantinedMessage] = ()
    refused: Mapping[str, int] = field(default_factory=dict)  # rate-limited at ingest, per device: counts
    faults: Sequence[FaultWindow] = ()
    broker: Sequence[BrokerSample] = ()
    # The final outbox (devices.outbox_view.ledger_sets); None = no snapshot, reconstruct from events.
    final_buffered: Mapping[str, frozenset[int]] | None = None
    final_evicted: Mapping[str, Mapping[int, str]] | None = None
    final_next_seq: Mapping[str, int] | None = None
    delivery: str | None = None  # fire-and-forget | broker-ack | end-to-end (None: inferred)
    broker_persistence: bool | None = None  # from stack.json, for faults that do not say
    skipped: Mapping[str, int] = field(default_factory=dict)  # malformed records, per source
    # the clinical side (lab/history/truth.py): ground truth, the analysis' events, the patients
    truth: Sequence[TruthSegment] = ()
    clinical_events: Sequence[ClinicalEvent] = ()
    analysed: bool = True  # False: no analysis stage ran (no analysis store): nothing to judge
    unanalysed: frozenset[Key] = frozenset()  # stored, but not analysed when the history was read
    patients: Mapping[str, Patient] = field(default_factory=dict)
    beat_spans: Sequence[BeatSpan] = ()  # a sample of stored signal, for EC57 (lab/history/beats.py)

    def __post_init__(self) -> None:
        for name in ("device_events", "stored", "duplicates", "quarantined", "faults", "broker",
                     "truth", "clinical_events", "beat_spans"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.final_buffered is not None:
            object.__setattr__(self, "final_buffered",
                               {d: frozenset(s) for d, s in self.final_buffered.items()})
        if self.final_evicted is not None:
            object.__setattr__(self, "final_evicted",
                               {d: dict(e) for d, e in self.final_evicted.items()})
        if self.final_next_seq is not None:
            object.__setattr__(self, "final_next_seq", dict(self.final_next_seq))

    def events(self, kind: type) -> Iterator[Any]:
        return (e for e in self.device_events if isinstance(e, kind))

    @property
    def ended_at(self) -> float | None:
        """The last time anything in the history happened."""
        times = [e.t for e in self.device_events] + [e.t for e in self.stored]
        times += [e.t for e in self.duplicates] + [e.t for e in self.quarantined]
        times += [s.t for s in self.broker]
        for w in self.faults:
            times.append(w.start if w.end is None else w.end)
        return max(times) if times else None
