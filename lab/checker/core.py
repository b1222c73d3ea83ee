"""The checker: a pure function from a run's History (lab.history.load) to what happened to every reading.

    check(history, expect=None, *, grace_s=1.0) -> CheckResult

No I/O, no clock, no randomness: the same history always gives the same result, and every
rule below is unit-tested on hand-written histories (tests/lab/test_checker.py).

Words (Jepsen's set checker, STYLE.md): a reading is identified by its key
(device_id, boot_epoch, seq). The readings the checker classifies are the keys of the
`generated` events; a key that was stored but never generated is *unexpected* (counted on its
own, in no other term).

Committed or not
    A generated key is *committed* (it got a durable seq) when the history shows it left the
    device's memory: it was published, broker_acked, ingest_acked, evicted, stored or
    duplicated. Otherwise it is *uncommitted* when the device's next boot (the boot event with
    the smallest boot number above the key's) restored a next_seq <= seq, or, with no later
    boot, when the final outbox's next_seq (History.final_next_seq) is <= seq; with neither,
    it counts as committed. (`generated` is written before the outbox commit; a kill -9 in
    between leaves exactly this trace, and the next boot reuses the seq under a new boot epoch.)

Outcomes (disjoint; the first that applies wins, in this order, as in lab/ledger.py)
    stored     a stored event exists for the key.
               duplicated: stored, and >= 1 duplicate event for the key (counted as readings;
               `duplicates` counts the duplicate events themselves).
               recovered: stored although the device never saw the confirmation its mode waits
               for: broker-ack, no broker_acked event; end-to-end, no ingest_acked event.
               Fire-and-forget waits for nothing, so it recovers nothing.
    lost       uncommitted (cause device-crash-before-persisting; see "The identity").
    buffered   still in the outbox at the end: its seq is in History.final_buffered[device]
               (the seq belongs to the device's latest committed key with that seq). Without a
               final snapshot (final_buffered is None), reconstructed: committed, no release
               event (below) and no evicted event.
    evicted    an evicted event for the key, or its seq in History.final_evicted[device];
               the reason is the event's (else the snapshot's).
    lost       everything else, with the first cause that applies:
      broker-queue-overflow          broker_acked at time A, delivery not end-to-end, and the
                                     broker's dropped counter increased at a $SYS sample taken
                                     in [A, R), R = the start of the first broker restart
                                     without persistence at or after A (no such restart: R = inf).
      broker-restart-no-persistence  broker_acked at A, delivery not end-to-end, and a broker
                                     restart without persistence started at or after A (it
                                     took the queue), or A lies in such a restart's effective
                                     interval (below): the restart also took the subscriber's
                                     session, and a PUBACKed reading with no subscription to
                                     go to is discarded until ingest is seen receiving again.
                                     A restart without persistence is a fault window on target
                                     "broker" whose fault is "restart-no-persistence", or whose
                                     fault is kill / term / restart with persistence False (the
                                     window's own flag, else History.broker_persistence).
      qos0-link-down                 its last publish was at QoS 0 and that publish time lies in
                                     the effective interval (below) of any fault window.
      unexplained                    anything else: e.g. QoS 0 with no fault around it, published
                                     at QoS 1 and neither acked nor buffered, or (end-to-end) let
                                     go of without an ingest_acked. A kill -9 of a *persistent*
                                     broker can lose the queue changes of its last autosave
                                     interval; those show here, not as a restart loss.

Release event (when the mode lets a reading leave the outbox): fire-and-forget, its first
published event; broker-ack, its first broker_acked; end-to-end, its first ingest_acked.
The delivery mode is History.delivery, else inferred: any ingest_acked event → end-to-end;
else any QoS >= 1 publish → broker-ack; else fire-and-forget.

Fault windows and their effective interval
    A window is [start, end] in the nemesis history. Its effective interval is
    [start - grace_s, restored_at], where restored_at is the first ingest receive
    (stored.received_at or duplicate time) at or after `end` — the first evidence the path
    works again (a subscriber reconnecting after a heal still drops QoS 0 readings) — or open
    (forever) when the window never ended or nothing was received after it. grace_s covers
    publishes accepted just before the fault that were still in flight when it hit.
    A loss is tied to a window: a device-crash loss to the first process fault on "devices"
    (kill / term / stop / restart) starting in [generated t - grace_s, next boot t], else as
    below by its generation time; any other loss to the window whose effective interval
    contains the reading's last publish time, else its generation time (the latest-starting
    window if several do); None when no window does.
    grace_s is in simulated seconds: a runner at speed K should pass about 0.1 * K + 1 (the
    fleet commits once per 0.1 s of real time).

The identity
    generated = stored + buffered + evicted + lost holds exactly, per device and in total,
    over every generated key. Uncommitted readings are in `generated` and in `lost` (cause
    device-crash-before-persisting) and are also listed on their own (`uncommitted`).
    lab/ledger.py cannot see them (its generated is next_seq), so `committed` = generated −
    uncommitted is the ledger's generated, and lost − uncommitted is the ledger's lost.

Extra measures
    latency          stored_at − capture end (captured_at + n_samples/rate) of every stored
                     event, quantiles p50/p90/p99/max (linear interpolation, numpy's default);
                     backlog_latency: the same over stored events with the backlog flag.
    backlog          device outbox: +1 at each committed generated event, −1 at its release
                     or evicted event (whichever is first), in history order; the high-water
                     mark of the fleet's sum and of the fullest single device. Broker queue:
                     max(store/messages/count − retained messages/count) − its first sampled
                     value (retained messages, such as the devices' statuses, are no backlog).
    drain            per ended window: the outbox level just before start, and the simulated
                     seconds after `end` until the level is back at or below it (0 if it
                     already is at `end`, None if never); the same for the broker queue from
                     $SYS samples.
    reordered        per device, stored events (store order) whose seq is lower than a seq of
                     that device stored before.

Expectations: "lost = 0", "lost > 0", "stored >= 100", "cause.broker-queue-overflow > 0",
"window.blackhole.lost > 0", ... (parse_expectation; METRICS lists the names) and
verdict(result, expectations) -> (ok, lines).
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from lab.errors import LabError
from lab.history import (
    Boot,
    BrokerAcked,
    Evicted,
    FaultWindow,
    Generated,
    History,
    IngestAcked,
    Key,
    Published,
    Stored,
)
from lab.report.ledger import seq_ranges

DELIVERY_MODES = ("fire-and-forget", "broker-ack", "end-to-end")
OVERFLOW = "broker-queue-overflow"
QOS0 = "qos0-link-down"
RESTART = "broker-restart-no-persistence"
CRASH = "device-crash-before-persisting"
UNEXPLAINED = "unexplained"
CAUSES = (OVERFLOW, QOS0, RESTART, CRASH, UNEXPLAINED)
OUTCOMES = ("stored", "buffered", "evicted", "lost")
PROCESS_FAULTS = ("kill", "term", "stop", "restart", "restart-no-persistence")
RESTARTS = ("kill", "term", "restart")
COUNT_FIELDS = ("generated", "committed", "stored", "duplicated", "duplicates", "recovered",
                "buffered", "evicted", "lost", "unexpected", "reordered", "quarantined")
QUANTILES = ("p50", "p90", "p99", "max")


class ExpectationError(LabError):
    """An expectation string that does not parse, or names no known measure."""


# --- results --------------------------------------------------------------------------------


class ReadingOutcome(NamedTuple):
    """What happened to one generated reading (a NamedTuple: there are hundreds of thousands)."""

    key: Key
    outcome: str  # stored | buffered | evicted | lost
    committed: bool = True
    duplicates: int = 0
    recovered: bool = False
    reason: str | None = None  # evicted: why
    cause: str | None = None  # lost: why
    window: str | None = None  # lost: the fault window it fell in


class Loss(NamedTuple):
    key: Key
    cause: str
    window: str | None
    t: float  # the time the window was looked up at (publish, else generation)

    def as_dict(self) -> dict[str, Any]:
        dev, boot, seq = self.key
        return {"dev": dev, "boot": boot, "seq": seq, "cause": self.cause, "window": self.window,
                "t": self.t}


@dataclass(frozen=True)
class Counts:
    generated: int = 0
    committed: int = 0
    stored: int = 0
    duplicated: int = 0
    duplicates: int = 0
    recovered: int = 0
    buffered: int = 0
    evicted: int = 0
    lost: int = 0
    unexpected: int = 0
    reordered: int = 0
    quarantined: int = 0
    evicted_by_reason: Mapping[str, int] = field(default_factory=dict)
    lost_by_cause: Mapping[str, int] = field(default_factory=dict)

    def balanced(self) -> bool:
        return self.generated == self.stored + self.buffered + self.evicted + self.lost

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in COUNT_FIELDS}
        d["evicted_by_reason"] = dict(sorted(self.evicted_by_reason.items()))
        d["lost_by_cause"] = {c: self.lost_by_cause.get(c, 0) for c in CAUSES}
        return d

    @staticmethod
    def total(parts: Iterable[Counts]) -> Counts:
        parts = list(parts)
        reasons: Counter[str] = Counter()
        causes: Counter[str] = Counter()
        for p in parts:
            reasons.update(p.evicted_by_reason)
            causes.update(p.lost_by_cause)
        return Counts(**{k: sum(getattr(p, k) for p in parts) for k in COUNT_FIELDS},
                      evicted_by_reason=dict(reasons), lost_by_cause=dict(causes))


@dataclass(frozen=True)
class Quantiles:
    n: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, **{q: getattr(self, q) for q in QUANTILES}}


@dataclass(frozen=True)
class Backlog:
    outbox_hwm: int = 0  # the fleet's outbox total
    outbox_hwm_at: float | None = None
    outbox_device_hwm: int = 0  # the fullest single device
    outbox_device_hwm_device: str | None = None
    broker_hwm: float | None = None  # store/messages/count − retained messages/count, above its first sample
    broker_hwm_at: float | None = None
    broker_baseline: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WindowReport:
    id: str
    fault: str
    target: str
    start: float
    end: float | None
    restored_at: float | None
    lost: int = 0
    lost_by_cause: Mapping[str, int] = field(default_factory=dict)
    outbox_before: int = 0
    outbox_drain_s: float | None = None
    broker_before: float | None = None
    broker_drain_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["lost_by_cause"] = dict(self.lost_by_cause)
        return d


@dataclass(frozen=True, eq=False)
class CheckResult:
    delivery: str
    totals: Counts
    devices: Mapping[str, Counts]
    outcomes: Mapping[Key, ReadingOutcome]
    losses: tuple[Loss, ...]
    uncommitted: tuple[Key, ...]
    unexpected: tuple[Key, ...]
    latency: Quantiles
    backlog_latency: Quantiles
    backlog: Backlog
    windows: tuple[WindowReport, ...]
    broker_dropped: int
    ok: bool | None = None  # the verdict, when check() was given expectations
    verdict_lines: tuple[str, ...] = ()

    def balanced(self) -> bool:
        return self.totals.balanced() and all(c.balanced() for c in self.devices.values())

    def window(self, wid: str) -> WindowReport | None:
        return next((w for w in self.windows if w.id == wid), None)

    def metrics(self) -> dict[str, float | None]:
        """Every measure an Expectation can name, by name."""
        t = self.totals
        m: dict[str, float | None] = {k: float(getattr(t, k)) for k in COUNT_FIELDS}
        for c in CAUSES:
            m[f"cause.{c}"] = float(t.lost_by_cause.get(c, 0))
        for r, n in t.evicted_by_reason.items():
            m[f"evicted.{r}"] = float(n)
        for q in QUANTILES:
            m[f"latency.{q}"] = getattr(self.latency, q)
            m[f"backlog_latency.{q}"] = getattr(self.backlog_latency, q)
        m["hwm.outbox"] = float(self.backlog.outbox_hwm)
        m["hwm.outbox_device"] = float(self.backlog.outbox_device_hwm)
        m["hwm.broker"] = self.backlog.broker_hwm
        m["broker.dropped"] = float(self.broker_dropped)
        drains = [w.outbox_drain_s for w in self.windows if w.end is not None]
        m["drain.max"] = (math.inf if any(d is None for d in drains)
                          else max((d for d in drains if d is not None), default=0.0))
        for w in self.windows:
            m[f"window.{w.id}.lost"] = float(w.lost)
            m[f"window.{w.id}.drain"] = math.inf if w.outbox_drain_s is None else w.outbox_drain_s
            for c in CAUSES:
                m[f"window.{w.id}.cause.{c}"] = float(w.lost_by_cause.get(c, 0))
        return m

    def as_dict(self, max_listed: int = 1000) -> dict[str, Any]:
        """JSON-able. Lists of keys (losses, uncommitted, unexpected) are cut at max_listed;
        the counts are always complete."""
        def keys(ks: Sequence[Key]) -> list[list[Any]]:
            return [list(k) for k in ks[:max_listed]]

        ranges: dict[str, dict[str, list[list[int]]]] = defaultdict(dict)
        by: dict[tuple[str, str], list[int]] = defaultdict(list)
        for loss in self.losses:
            by[(loss.key[0], loss.cause)].append(loss.key[2])
        for (dev, cause), seqs in sorted(by.items()):
            ranges[dev][cause] = seq_ranges(sorted(seqs))
        out: dict[str, Any] = {
            "delivery": self.delivery,
            "balanced": self.balanced(),
            "totals": self.totals.as_dict(),
            "ledger": {"generated": self.totals.committed,
                       "lost": self.totals.lost - self.totals.lost_by_cause.get(CRASH, 0)},
            "devices": {d: {**c.as_dict(), "lost_ranges_by_cause": ranges.get(d, {})}
                        for d, c in sorted(self.devices.items())},
            "losses": [x.as_dict() for x in self.losses[:max_listed]],
            "losses_left_off": max(0, len(self.losses) - max_listed),
            "uncommitted": keys(self.uncommitted),
            "unexpected": keys(self.unexpected),
            "latency_s": self.latency.as_dict(),
            "backlog_latency_s": self.backlog_latency.as_dict(),
            "backlog": self.backlog.as_dict(),
            "windows": [w.as_dict() for w in self.windows],
            "broker": {"dropped": self.broker_dropped},
        }
        if self.ok is not None:
            out["verdict"] = {"ok": self.ok, "lines": list(self.verdict_lines)}
        return out


# --- expectations ---------------------------------------------------------------------------

_OPS = {
    "=": lambda a, b: a == b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_CAUSE_RE = "|".join(re.escape(c) for c in CAUSES)
_Q_RE = "|".join(QUANTILES)
WINDOW_ID = re.compile(r"[A-Za-z0-9_-]+")
METRICS = re.compile(
    rf"(?:{'|'.join(COUNT_FIELDS)})"
    rf"|cause\.(?:{_CAUSE_RE})"
    r"|evicted\.[A-Za-z0-9_:.-]+"
    rf"|(?:latency|backlog_latency)\.(?:{_Q_RE})"
    r"|hwm\.(?:outbox|outbox_device|broker)"
    r"|broker\.dropped|drain\.max"
    rf"|window\.[A-Za-z0-9_-]+\.(?:lost|drain|cause\.(?:{_CAUSE_RE}))"
)
_EXPECTATION = re.compile(
    r"\s*(?P<metric>[A-Za-z0-9_.:-]+)\s*(?P<op>==|!=|<=|>=|=|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*"
)
METRIC_HELP = ("generated, committed, stored, duplicated, duplicates, recovered, buffered, "
               "evicted, lost, unexpected, reordered, quarantined, cause.<cause>, "
               "evicted.<reason>, latency.p50|p90|p99|max, backlog_latency.<q>, "
               "hwm.outbox|outbox_device|broker, broker.dropped, drain.max, "
               "window.<id>.lost|drain|cause.<cause>")


@dataclass(frozen=True)
class Expectation:
    metric: str
    op: str
    value: float
    text: str = ""

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ExpectationError(f"unknown comparison {self.op!r} in {self.text!r}")
        if not METRICS.fullmatch(self.metric):
            hint = ""
            if self.metric.startswith("cause.") or ".cause." in self.metric:
                hint = f"; causes are {', '.join(CAUSES)}"
            raise ExpectationError(f"unknown measure {self.metric!r} in expectation "
                                   f"{self.text or self.metric!r}{hint}; known: {METRIC_HELP}")
        if not math.isfinite(self.value):
            raise ExpectationError(f"expectation {self.text!r} needs a finite number")
        if not self.text:
            object.__setattr__(self, "text", f"{self.metric} {self.op} {_fmt(self.value)}")

    @property
    def window_id(self) -> str | None:
        return self.metric.split(".")[1] if self.metric.startswith("window.") else None

    def holds(self, actual: float) -> bool:
        return bool(_OPS[self.op](actual, self.value))


def parse_expectation(text: str) -> Expectation:
    """'lost = 0', 'lost>0', 'stored >= 100', 'cause.broker-queue-overflow > 0', ..."""
    if not isinstance(text, str):
        raise ExpectationError(f"an expectation is a string like \"lost = 0\", not {text!r}")
    m = _EXPECTATION.fullmatch(text)
    if m is None:
        raise ExpectationError(f"bad expectation {text!r}: write <measure> <op> <number>, "
                               f"e.g. \"lost = 0\" or \"cause.broker-queue-overflow > 0\" "
                               f"(op: = != < <= > >=)")
    return Expectation(m["metric"], m["op"], float(m["value"]), text.strip())


def _fmt(x: float | None) -> str:
    if x is None:
        return "undefined"
    if math.isinf(x):
        return "never" if x > 0 else "-inf"
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}"


def verdict(result: CheckResult, expectations: Iterable[Expectation | str]) -> tuple[bool, list[str]]:
    """(all hold, one line per expectation: "ok   lost = 0  (lost = 0)" or "FAIL ...")."""
    metrics = result.metrics()
    ok, lines = True, []
    for e in expectations:
        exp = parse_expectation(e) if isinstance(e, str) else e
        if exp.metric in metrics:
            actual = metrics[exp.metric]
            holds = actual is not None and exp.holds(actual)
            got = f"{exp.metric} = {_fmt(actual)}"
        elif exp.window_id is not None:
            holds, got = False, f"no fault window {exp.window_id!r} in the history"
        else:  # a cause or eviction reason that never happened counts as 0
            holds, got = exp.holds(0.0), f"{exp.metric} = 0"
        if exp.metric == "lost" and result.totals.lost and not holds:
            got += " (" + ", ".join(f"{c} {n}" for c, n in result.totals.lost_by_cause.items() if n) + ")"
        ok &= holds
        lines.append(f"{'ok  ' if holds else 'FAIL'}  {exp.text}   ({got})")
    return ok, lines


# --- helpers --------------------------------------------------------------------------------


def quantiles(values: Sequence[float]) -> Quantiles:
    """p50/p90/p99/max with linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return Quantiles()

    def q(p: float) -> float:
        pos = p * (len(xs) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(xs) - 1)
        return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 6)

    return Quantiles(n=len(xs), p50=q(0.5), p90=q(0.9), p99=q(0.99), max=round(xs[-1], 6))


def infer_delivery(history: History) -> str:
    if history.delivery in DELIVERY_MODES:
        return history.delivery
    if any(True for _ in history.events(IngestAcked)):
        return "end-to-end"
    if any(e.qos >= 1 for e in history.events(Published)):
        return "broker-ack"
    return "fire-and-forget"


class _Series:
    """A step function of time: the value after all changes at times <= t."""

    def __init__(self, times: list[float], values: list[float], initial: float = 0.0) -> None:
        self.times, self.values, self.initial = times, values, initial

    def before(self, t: float) -> float:
        """The value just before t (changes at times < t applied)."""
        i = bisect.bisect_left(self.times, t)
        return self.values[i - 1] if i else self.initial

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t)
        return self.values[i - 1] if i else self.initial

    def drain(self, end: float, level: float) -> float | None:
        """Seconds after `end` until the value is <= level (0 if already), None if never."""
        if self.at(end) <= level:
            return 0.0
        for i in range(bisect.bisect_right(self.times, end), len(self.times)):
            if self.values[i] <= level:
                return self.times[i] - end
        return None


# --- the check ------------------------------------------------------------------------------


def check(history: History, expect: Expectation | str | Iterable[Expectation | str] | None = None,
          *, grace_s: float = 1.0) -> CheckResult:
    """Classify every reading of `history`; with `expect`, also give the verdict."""
    mode = infer_delivery(history)
    ev = history.device_events

    # Index the device events by key: the history index of each key's first generated,
    # published, broker_acked, ingest_acked and evicted event, and of its last publish.
    gen_i: dict[Key, int] = {}
    first_pub: dict[Key, int] = {}
    last_pub_i: dict[Key, int] = {}
    backed_i: dict[Key, int] = {}
    iacked_i: dict[Key, int] = {}
    evict_i: dict[Key, int] = {}
    boots: dict[str, dict[int, Boot]] = defaultdict(dict)
    for i, e in enumerate(ev):
        cls = type(e)
        if cls is Boot:
            boots[e.dev].setdefault(e.boot, e)  # type: ignore[union-attr]
            continue
        k = (e.dev, e.boot, e.seq)  # type: ignore[union-attr]
        if cls is Generated:
            gen_i.setdefault(k, i)
        elif cls is Published:
            first_pub.setdefault(k, i)
            last_pub_i[k] = i
        elif cls is BrokerAcked:
            backed_i.setdefault(k, i)
        elif cls is IngestAcked:
            iacked_i.setdefault(k, i)
        elif cls is Evicted:
            evict_i.setdefault(k, i)
    gens: dict[Key, Generated] = {k: ev[i] for k, i in gen_i.items()}  # type: ignore[misc]
    devices: set[str] = set(boots)
    for index in (gen_i, first_pub, backed_i, iacked_i, evict_i):
        devices.update(k[0] for k in index)

    stored: dict[Key, Stored] = {}
    for s in history.stored:
        stored.setdefault(s.key, s)
        devices.add(s.dev)
    dup_count: Counter[Key] = Counter(d.key for d in history.duplicates)
    dup_events_by_dev: Counter[str] = Counter(d.dev for d in history.duplicates)
    devices.update(d.dev for d in history.duplicates)
    quarantined_by_dev: Counter[str] = Counter(q.dev for q in history.quarantined if q.dev)
    devices.update(quarantined_by_dev)
    for snap in (history.final_buffered, history.final_evicted, history.final_next_seq):
        if snap is not None:
            devices.update(snap)

    # Committed or not.
    next_boot_seq: dict[tuple[str, int], int | None] = {}  # (dev, boot) → next boot's next_seq

    def committed(key: Key) -> bool:
        if key in first_pub or key in backed_i or key in iacked_i or key in evict_i \
                or key in stored or key in dup_count:
            return True
        dev, boot, seq = key
        if (dev, boot) not in next_boot_seq:
            later = [b for b in boots.get(dev, {}) if b > boot]
            next_boot_seq[(dev, boot)] = boots[dev][min(later)].next_seq if later else None
        restored_seq = next_boot_seq[(dev, boot)]
        if restored_seq is not None:
            return seq < restored_seq
        if history.final_next_seq is not None and dev in history.final_next_seq:
            return seq < history.final_next_seq[dev]
        return True

    is_committed = {k: committed(k) for k in gens}
    order = sorted(gens, key=lambda k: (k[0], k[2], k[1]))
    # Which committed key owns a (device, seq) in the final snapshot: the latest boot's.
    owner: dict[tuple[str, int], Key] = {}
    for k in order:
        if is_committed[k]:
            owner[(k[0], k[2])] = k

    def owns(key: Key, snap: Mapping[str, Any] | None) -> bool:
        return snap is not None and owner.get((key[0], key[2])) == key and key[2] in snap.get(key[0], ())

    release_i = {"fire-and-forget": first_pub, "broker-ack": backed_i, "end-to-end": iacked_i}[mode]

    # Fault windows: effective intervals and the broker's non-persistent restarts.
    receives = sorted([s.received_at if s.received_at is not None else s.t for s in history.stored]
                      + [d.t for d in history.duplicates])
    windows = list(history.faults)

    def restored_at(w: FaultWindow) -> float | None:
        if w.end is None:
            return None
        i = bisect.bisect_left(receives, w.end)
        return receives[i] if i < len(receives) else None

    restored = {w.id: restored_at(w) for w in windows}
    spans = sorted(((w.start - grace_s, math.inf if restored[w.id] is None else restored[w.id], w)
                    for w in windows), key=lambda x: -x[2].start)  # latest start first

    def containing(t: float) -> FaultWindow | None:
        for lo, hi, w in spans:
            if lo <= t <= hi:  # type: ignore[operator]
                return w
        return None

    def no_persistence(w: FaultWindow) -> bool:
        if w.target != "broker":
            return False
        if w.fault == "restart-no-persistence":
            return True
        persistence = w.persistence if w.persistence is not None else history.broker_persistence
        return w.fault in RESTARTS and persistence is False

    restart_starts = sorted(w.start for w in windows if no_persistence(w))
    restart_spans = [(w.start, math.inf if restored[w.id] is None else restored[w.id])
                     for w in windows if no_persistence(w)]

    # Broker counters: dropped increments (per incarnation, from 0) and the queue series.
    samples = sorted(history.broker, key=lambda s: s.t)
    drop_times: list[float] = []
    last_dropped: dict[int, float] = {}
    for s in samples:
        if s.dropped is None:
            continue
        if s.dropped > last_dropped.get(s.incarnation, 0.0):
            drop_times.append(s.t)
        last_dropped[s.incarnation] = s.dropped
    broker_dropped = int(sum(last_dropped.values()))

    def dropped_in(lo: float, hi: float) -> bool:
        i = bisect.bisect_left(drop_times, lo)
        return i < len(drop_times) and drop_times[i] < hi

    # Classify.
    outcomes: dict[Key, ReadingOutcome] = {}
    losses: list[Loss] = []
    uncommitted: list[Key] = []
    final_buffered, final_evicted = history.final_buffered, history.final_evicted
    for key in order:
        if key in stored:
            recovered = (mode == "broker-ack" and key not in backed_i) or \
                        (mode == "end-to-end" and key not in iacked_i)
            outcomes[key] = ReadingOutcome(key, "stored", duplicates=dup_count.get(key, 0),
                                           recovered=recovered)
            continue
        g = gens[key]
        dev, boot, seq = key
        if not is_committed[key]:
            uncommitted.append(key)
            w = _crash_window(windows, g, boots.get(dev, {}), boot, grace_s) or containing(g.t)
            wid = w.id if w else None
            outcomes[key] = ReadingOutcome(key, "lost", committed=False, cause=CRASH, window=wid)
            losses.append(Loss(key, CRASH, wid, g.t))
            continue
        if final_buffered is not None:
            buffered = owns(key, final_buffered)
        else:
            buffered = key not in release_i and key not in evict_i
        if buffered:
            outcomes[key] = ReadingOutcome(key, "buffered")
            continue
        if key in evict_i or owns(key, final_evicted):
            reason = ev[evict_i[key]].reason if key in evict_i else \
                final_evicted[dev][seq]  # type: ignore[index, union-attr]
            outcomes[key] = ReadingOutcome(key, "evicted", reason=reason)
            continue
        last_pub: Published | None = ev[last_pub_i[key]] if key in last_pub_i else None  # type: ignore[assignment]
        pub_window = containing(last_pub.t) if last_pub is not None else None
        cause = UNEXPLAINED
        if key in backed_i and mode != "end-to-end":
            acked_at = ev[backed_i[key]].t
            i = bisect.bisect_left(restart_starts, acked_at)
            restart = restart_starts[i] if i < len(restart_starts) else None
            if dropped_in(acked_at, math.inf if restart is None else restart):
                cause = OVERFLOW
            elif restart is not None or any(lo <= acked_at <= hi for lo, hi in restart_spans):
                cause = RESTART
        elif last_pub is not None and last_pub.qos == 0 and pub_window is not None:
            cause = QOS0
        t_ref, w = (last_pub.t, pub_window) if last_pub is not None else (g.t, None)
        if w is None and (w := containing(g.t)) is not None:
            t_ref = g.t
        wid = w.id if w else None
        outcomes[key] = ReadingOutcome(key, "lost", cause=cause, window=wid)
        losses.append(Loss(key, cause, wid, t_ref))

    unexpected = sorted(k for k in stored if k not in gens)

    # Reordering at ingest (store order = history order of stored events).
    reordered: Counter[str] = Counter()
    high: dict[str, int] = {}
    for s in sorted(history.stored, key=lambda s: s.t):
        if s.seq < high.get(s.dev, -1):
            reordered[s.dev] += 1
        high[s.dev] = max(high.get(s.dev, -1), s.seq)

    # Per-device counts.
    per: dict[str, dict[str, Any]] = {d: {"reasons": Counter(), "causes": Counter(),
                                          **dict.fromkeys(COUNT_FIELDS, 0)} for d in devices}
    for key, o in outcomes.items():
        c = per[key[0]]
        c["generated"] += 1
        c["committed"] += int(o.committed)
        c[o.outcome] += 1
        if o.outcome == "stored":
            c["duplicated"] += int(o.duplicates > 0)
            c["recovered"] += int(o.recovered)
        elif o.outcome == "evicted":
            c["reasons"][o.reason] += 1
        elif o.outcome == "lost":
            c["causes"][o.cause] += 1
    for k in unexpected:
        per[k[0]]["unexpected"] += 1
    for d in devices:
        per[d]["duplicates"] = dup_events_by_dev.get(d, 0)
        per[d]["reordered"] = reordered.get(d, 0)
        per[d]["quarantined"] = quarantined_by_dev.get(d, 0)
    dev_counts = {
        d: Counts(**{k: v[k] for k in COUNT_FIELDS}, evicted_by_reason=dict(v["reasons"]),
                  lost_by_cause=dict(v["causes"]))
        for d, v in sorted(per.items())
    }
    totals = Counts.total(dev_counts.values())
    unattributed_q = sum(1 for q in history.quarantined if not q.dev)
    if unattributed_q:
        totals = replace(totals, quarantined=totals.quarantined + unattributed_q)

    # Latency.
    latency = quantiles([s.latency_s for s in stored.values()])
    backlog_latency = quantiles([s.latency_s for s in stored.values() if s.backlog])

    # Outbox backlog, reconstructed from events in history order.
    changes: list[tuple[float, int, str, int]] = []
    for key, gi in gen_i.items():
        if not is_committed[key]:
            continue
        changes.append((ev[gi].t, gi, key[0], +1))
        ri, xi = release_i.get(key), evict_i.get(key)
        out_i = ri if xi is None else xi if ri is None else min(ri, xi)
        if out_i is not None:
            changes.append((ev[out_i].t, out_i, key[0], -1))
    changes.sort()
    level = 0
    times: list[float] = []
    values: list[int] = []
    dev_level: dict[str, int] = defaultdict(int)
    best, best_at, dev_best, dev_best_id = 0, None, 0, None
    for t, _, dev, delta in changes:
        level += delta
        d_level = dev_level[dev] = dev_level[dev] + delta
        if times and times[-1] == t:
            values[-1] = level
        else:
            times.append(t)
            values.append(level)
        if level > best:
            best, best_at = level, t
        if d_level > dev_best:
            dev_best, dev_best_id = d_level, dev
    outbox = _Series(times, [float(v) for v in values])

    queue = [(s.t, s.queued) for s in samples if s.queued is not None]
    broker_series = _Series([t for t, _ in queue], [v for _, v in queue]) if queue else None
    baseline = queue[0][1] if queue else None
    peak = max(queue, key=lambda x: x[1]) if queue else None
    backlog = Backlog(
        outbox_hwm=best, outbox_hwm_at=best_at, outbox_device_hwm=dev_best,
        outbox_device_hwm_device=dev_best_id,
        broker_hwm=None if peak is None or baseline is None else max(0.0, peak[1] - baseline),
        broker_hwm_at=None if peak is None else peak[0], broker_baseline=baseline,
    )

    # Per-window reports.
    by_window: dict[str, Counter[str]] = defaultdict(Counter)
    for loss in losses:
        if loss.window is not None:
            by_window[loss.window][loss.cause] += 1
    reports = []
    for w in windows:
        before = outbox.before(w.start)
        b_before = None
        b_drain = None
        if broker_series is not None and broker_series.times[0] <= w.start:
            b_before = broker_series.at(w.start)
            if w.end is not None:
                b_drain = broker_series.drain(w.end, b_before)
        reports.append(WindowReport(
            id=w.id, fault=w.fault, target=w.target, start=w.start, end=w.end,
            restored_at=restored[w.id], lost=sum(by_window[w.id].values()),
            lost_by_cause=dict(by_window[w.id]), outbox_before=int(before),
            outbox_drain_s=None if w.end is None else outbox.drain(w.end, before),
            broker_before=b_before, broker_drain_s=b_drain,
        ))

    result = CheckResult(
        delivery=mode, totals=totals, devices=dev_counts, outcomes=outcomes,
        losses=tuple(losses), uncommitted=tuple(uncommitted), unexpected=tuple(unexpected),
        latency=latency, backlog_latency=backlog_latency, backlog=backlog,
        windows=tuple(reports), broker_dropped=broker_dropped,
    )
    if expect is None:
        return result
    exps = [expect] if isinstance(expect, Expectation | str) else list(expect)
    ok, lines = verdict(result, exps)
    return replace(result, ok=ok, verdict_lines=tuple(lines))


def _crash_window(windows: Sequence[FaultWindow], g: Generated, boots: Mapping[int, Boot],
                  boot: int, grace_s: float) -> FaultWindow | None:
    """The first process fault on the fleet that started between generation and the next boot."""
    later = [b for b in boots if b > boot]
    until = boots[min(later)].t if later else math.inf
    for w in sorted(windows, key=lambda w: w.start):
        if w.target in ("devices", "fleet") and w.fault in PROCESS_FAULTS \
                and g.t - grace_s <= w.start <= until:
            return w
    return None
