"""The merged history of one run, as typed events, and the loaders that read it from a state dir.

Sources (docs/architecture.md, "History (for the checker)"):

    history/devices.jsonl    the fleet: boot, generated, published, broker_acked, ingest_acked, evicted
    ingest/ingest.sqlite     the ingest store, read-only: stored (readings), duplicate (duplicates),
                             quarantined (quarantine)
    history/nemesis.jsonl    the nemesis: fault_start / fault_end, paired into FaultWindow
    watch/sys.jsonl          the $SYS watcher: store/messages/count and publish/messages/dropped,
                             per broker incarnation
    fleet/outbox.sqlite      the final outbox snapshot (devices.outbox_view.ledger_sets): what is still
                             buffered, what was evicted, each device's durable next_seq
    stack.json               the delivery mode and the broker's persistence setting

Every part is optional: a missing file gives an empty part (and a missing outbox gives
`final_buffered = None`, which tells the checker to reconstruct the outbox from events).
Malformed records (a torn last line, a record without its keys, an unknown event) are skipped
and counted in `History.skipped`; nothing here raises on bad history content.

Times are the injected clock's simulated Unix seconds. All event types are frozen, slotted
dataclasses; `History` holds tuples of them, in the order of their source (device events in
file order, stored events in store order).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from devices import outbox_view as dev_inspect
from ecgcore.files import read_json, read_jsonl
from lab.history.brokerstats import DROPPED, RETAINED, STORED
from wire import WireError, device_from_topic

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
    faults: Sequence[FaultWindow] = ()
    broker: Sequence[BrokerSample] = ()
    # The final outbox (devices.outbox_view.ledger_sets); None = no snapshot, reconstruct from events.
    final_buffered: Mapping[str, frozenset[int]] | None = None
    final_evicted: Mapping[str, Mapping[int, str]] | None = None
    final_next_seq: Mapping[str, int] | None = None
    delivery: str | None = None  # fire-and-forget | broker-ack | end-to-end (None: inferred)
    broker_persistence: bool | None = None  # from stack.json, for faults that do not say
    skipped: Mapping[str, int] = field(default_factory=dict)  # malformed records, per source

    def __post_init__(self) -> None:
        for name in ("device_events", "stored", "duplicates", "quarantined", "faults", "broker"):
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


# --- parsers (pure: records in, events out) -------------------------------------------------


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"not a number: {v!r}")
    return float(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"not an integer: {v!r}")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"not a string: {v!r}")
    return v


def parse_device_event(rec: Mapping[str, Any]) -> DeviceEvent:
    """One devices.jsonl record → its event; KeyError/TypeError/ValueError when malformed."""
    ev = rec["ev"]
    t, dev, boot = _num(rec["t"]), _str(rec["dev"]), _int(rec["boot"])
    if ev == "boot":
        return Boot(t, dev, boot, _int(rec["next_seq"]))
    seq = _int(rec["seq"])
    if ev == "generated":
        cap = rec.get("cap")
        return Generated(t, dev, boot, seq, None if cap is None else _num(cap))
    if ev == "published":
        return Published(t, dev, boot, seq, _int(rec.get("qos", 1)), bool(rec.get("backlog", False)))
    if ev == "broker_acked":
        return BrokerAcked(t, dev, boot, seq)
    if ev == "ingest_acked":
        return IngestAcked(t, dev, boot, seq)
    if ev == "evicted":
        return Evicted(t, dev, boot, seq, _str(rec.get("reason", "unknown")))
    raise ValueError(f"unknown device event {ev!r}")


def parse_device_events(records: Iterable[Mapping[str, Any]]) -> tuple[list[DeviceEvent], int]:
    """Every well-formed record, in order, and how many were skipped."""
    out: list[DeviceEvent] = []
    skipped = 0
    for rec in records:
        try:
            out.append(parse_device_event(rec))
        except (KeyError, TypeError, ValueError):
            skipped += 1
    return out, skipped


def pair_faults(records: Iterable[Mapping[str, Any]]) -> tuple[list[FaultWindow], int]:
    """nemesis.jsonl records → fault windows, in order of start; and how many were skipped.

    A fault_end closes the open fault_start with the same "id" if the records carry one; else
    the same (target, "seq") (lab.nemesis.tracker's records); else the oldest open start of the
    same (fault, target). A start never ended gives end=None; an end with no open start, and
    any other event (fault_phase, ...), is skipped (phases are not counted as malformed).
    Windows without an id are named "<fault>-<target>-<n>" (n counts from 1 per name).
    """
    windows: list[dict[str, Any]] = []
    open_: dict[tuple[Any, ...], deque[int]] = {}
    counts: dict[str, int] = {}
    skipped = 0

    def pair_key(rec: Mapping[str, Any]) -> tuple[Any, ...]:
        if rec.get("id") is not None:
            return ("id", str(rec["id"]))
        if rec.get("seq") is not None:
            return ("seq", str(rec["target"]), rec["seq"])
        return ("ft", str(rec["fault"]), str(rec["target"]))

    for rec in records:
        try:
            event, t = rec["event"], _num(rec["t"])
            if event not in ("fault_start", "fault_end"):
                if event != "fault_phase":
                    skipped += 1
                continue
            fault, target = _str(rec["fault"]), _str(rec["target"])
            key = pair_key(rec)
        except (KeyError, TypeError, ValueError):
            skipped += 1
            continue
        if event == "fault_start":
            if rec.get("id") is not None:
                wid = str(rec["id"])
            else:
                base = f"{fault}-{target}"
                counts[base] = counts.get(base, 0) + 1
                wid = f"{base}-{counts[base]}"
            persistence = rec.get("persistence")
            windows.append({"id": wid, "fault": fault, "target": target, "start": t, "end": None,
                            "persistence": persistence if isinstance(persistence, bool) else None})
            open_.setdefault(key, deque()).append(len(windows) - 1)
        else:
            queue = open_.get(key)
            if not queue:
                skipped += 1
                continue
            w = windows[queue.popleft()]
            w["end"] = max(t, w["start"])
    out = [FaultWindow(**w) for w in windows]
    out.sort(key=lambda w: w.start)
    return out, skipped


def broker_samples(records: Iterable[Mapping[str, Any]]) -> tuple[list[BrokerSample], int]:
    """watch/sys.jsonl records → one sample per record that carries either counter, with the
    other counter carried forward from the same incarnation (a restart resets both)."""
    out: list[BrokerSample] = []
    skipped = 0
    last: dict[int, dict[str, float]] = {}
    for rec in records:
        try:
            t, inc = _num(rec["t"]), int(rec.get("incarnation", 0))
            values = rec.get("values", {})
            if not isinstance(values, Mapping):
                raise TypeError("values is not an object")
        except (KeyError, TypeError, ValueError):
            skipped += 1
            continue
        known = last.setdefault(inc, {})
        changed = False
        for name in (STORED, DROPPED, RETAINED):
            if name in values:
                try:
                    known[name] = _num(values[name])
                    changed = True
                except TypeError:
                    skipped += 1
        if changed:
            out.append(BrokerSample(t, inc, known.get(STORED), known.get(DROPPED), known.get(RETAINED)))
    return out, skipped


KIND_ALIASES = {"latency": "slow", "bandwidth": "slow"}  # scenario kind → the proxy's record


def label_windows(history: History, names: Iterable[tuple[str, str, str, float]], *,
                  tolerance_s: float) -> History:
    """The same history with its fault windows renamed to the ids a scenario knows them by.

    `names` are (id, kind, target, start): for each, the window on that target, of that kind
    (a scenario's latency and bandwidth match the proxy's "slow"), not yet labelled, whose start
    is nearest to `start` and at most `tolerance_s` away, takes the id. The proxy's records
    carry no scenario id, so a runner passes its plan here (start = the run's first simulated
    time + the step's `at`). A window that already has the id is left as it is; names that
    match no window are ignored (the verdict then reports the window as missing)."""
    faults = list(history.faults)
    taken: set[int] = set()
    for wid, kind, target, start in names:
        if any(w.id == wid for w in faults):
            continue
        kinds = {kind, KIND_ALIASES.get(kind, kind)}
        best: int | None = None
        for i, w in enumerate(faults):
            if i in taken or w.target != target or w.fault not in kinds:
                continue
            gap = abs(w.start - start)
            if gap <= tolerance_s and (best is None or gap < abs(faults[best].start - start)):
                best = i
        if best is not None:
            taken.add(best)
            faults[best] = replace(faults[best], id=wid)
    return replace(history, faults=faults)


# --- loaders (read-only I/O) ----------------------------------------------------------------


@contextmanager
def _readonly(db_path: Path) -> Iterator[sqlite3.Connection | None]:
    """One read snapshot of a SQLite file opened with mode=ro (never created nor written)."""
    if not db_path.is_file():
        yield None
        return
    try:
        db = sqlite3.connect(f"file:{quote(str(db_path.resolve()))}?mode=ro", uri=True,
                             timeout=10.0, isolation_level=None)
    except sqlite3.Error:
        yield None
        return
    try:
        db.execute("BEGIN")
        yield db
    finally:
        db.close()


def _rows(db: sqlite3.Connection | None, sql: str) -> list[tuple[Any, ...]]:
    if db is None:
        return []
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def _topic_device(topic: str) -> str | None:
    try:
        return device_from_topic(topic)
    except WireError:
        return None


def read_ingest(db_path: Path) -> tuple[list[Stored], list[Duplicate], list[QuarantinedMessage]]:
    """Stored (in store order: stored_at, then insertion), duplicates and quarantined rows."""
    with _readonly(db_path) as db:
        readings = _rows(db, "SELECT device_id, boot_epoch, seq, captured_at, received_at, stored_at,"
                             " n_samples, sample_rate_hz, backlog FROM readings"
                             " ORDER BY stored_at, rowid")
        dups = _rows(db, "SELECT device_id, boot_epoch, seq, received_at FROM duplicates"
                         " ORDER BY received_at, rowid")
        quar = _rows(db, "SELECT received_at, topic, reason FROM quarantine ORDER BY id")
    stored = [
        Stored(float(at), dev, int(boot), int(seq), float(cap),
               None if recv is None else float(recv),
               float(n) / float(rate) if rate else 0.0, bool(bl))
        for dev, boot, seq, cap, recv, at, n, rate, bl in readings
    ]
    duplicates = [Duplicate(float(at), dev, int(boot), int(seq)) for dev, boot, seq, at in dups]
    quarantined = [QuarantinedMessage(float(at), topic, reason, _topic_device(topic)) for at, topic, reason in quar]
    return stored, duplicates, quarantined


def load_history(state_dir: Path) -> History:
    """Everything the checker needs, from a (running, stopped or copied) state dir."""
    root = Path(state_dir)
    skipped: dict[str, int] = {}
    device_events, skipped["devices"] = parse_device_events(read_jsonl(root / "history" / "devices.jsonl"))
    faults, skipped["nemesis"] = pair_faults(read_jsonl(root / "history" / "nemesis.jsonl"))
    samples, skipped["broker"] = broker_samples(read_jsonl(root / "watch" / "sys.jsonl"))
    stored, duplicates, quarantined = read_ingest(root / "ingest" / "ingest.sqlite")
    final_buffered = final_evicted = final_next_seq = None
    outbox = root / "fleet" / "outbox.sqlite"
    if outbox.is_file():
        sets = dev_inspect.ledger_sets(outbox)
        final_buffered = {d: frozenset(v["buffered"]) for d, v in sets.items()}
        final_evicted = {d: dict(v["evicted"]) for d, v in sets.items()}
        final_next_seq = {d: int(v["generated"]) for d, v in sets.items()}
    stack = read_json(root / "stack.json") or {}
    delivery = stack.get("delivery") if isinstance(stack, dict) else None
    persistence = stack.get("persistence") if isinstance(stack, dict) else None
    return History(
        device_events=device_events, stored=stored, duplicates=duplicates, quarantined=quarantined,
        faults=faults, broker=samples, final_buffered=final_buffered, final_evicted=final_evicted,
        final_next_seq=final_next_seq,
        delivery=delivery if isinstance(delivery, str) else None,
        broker_persistence=persistence if isinstance(persistence, bool) else None,
        skipped={k: v for k, v in skipped.items() if v},
    )
