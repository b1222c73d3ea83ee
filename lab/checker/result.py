"""What the checker says: the value types of a CheckResult and the words they use.

    ReadingOutcome  one generated reading: stored | buffered | evicted | lost, and why
    Loss            one lost reading: its cause and the fault window it is tied to
    Counts          the counts of one device, or of all (Counts.total)
    Quantiles       p50/p90/p99/max of a latency
    Backlog         the high-water marks of the device outboxes and of the broker's queue
    WindowReport    one fault window: what it lost and how long its backlog took to drain
    CheckResult     all of the above; metrics() names every measure an Expectation can name

The clinical section's types (Clinical, Episode) are lab/checker/clinical.py's.

The causes of a loss (CAUSES, in this order) are defined in lab/checker/classify.py, the
measures in lab/checker/measures.py, the expectation language in lab/checker/expect.py.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ecgcore.modes import Delivery
from lab.history import Key
from wire import seqs_to_ranges

if TYPE_CHECKING:  # clinical.py builds on this module's types
    from lab.checker.clinical import Clinical
    from lab.checker.ec57 import Ec57

OVERFLOW = "broker-queue-overflow"
QOS0 = "qos0-link-down"
RESTART = "broker-restart-no-persistence"
CRASH = "device-crash-before-persisting"
SNAPSHOT = "broker-crash-before-snapshot"
LOST_SESSION = "broker-crash-lost-session"
FORGED_ACK = "forged-ack"
UNEXPLAINED = "unexplained"
CAUSES = (OVERFLOW, QOS0, RESTART, SNAPSHOT, LOST_SESSION, CRASH, FORGED_ACK, UNEXPLAINED)
OUTCOMES = ("stored", "buffered", "evicted", "lost")
COUNT_FIELDS = ("generated", "committed", "stored", "duplicated", "duplicates", "recovered",
                "buffered", "evicted", "lost", "unexpected", "reordered", "quarantined")
QUANTILES = ("p50", "p90", "p99", "max")


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Seqs as [first, last] runs of consecutive numbers, for JSON: [1, 2, 3, 7] → [[1, 3], [7, 7]]
    (wire.seqs_to_ranges, the one implementation, as lists)."""
    return [[a, b] for a, b in seqs_to_ranges(seqs)]


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
    quarantined_by_reason: Mapping[str, int] = field(default_factory=dict)

    def balanced(self) -> bool:
        return self.generated == self.stored + self.buffered + self.evicted + self.lost

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in COUNT_FIELDS}
        d["evicted_by_reason"] = dict(sorted(self.evicted_by_reason.items()))
        d["lost_by_cause"] = {c: self.lost_by_cause.get(c, 0) for c in CAUSES}
        d["quarantined_by_reason"] = dict(sorted(self.quarantined_by_reason.items()))
        return d

    @staticmethod
    def total(parts: Iterable[Counts]) -> Counts:
        parts = list(parts)
        reasons: Counter[str] = Counter()
        causes: Counter[str] = Counter()
        quarantine: Counter[str] = Counter()
        for p in parts:
            reasons.update(p.evicted_by_reason)
            causes.update(p.lost_by_cause)
            quarantine.update(p.quarantined_by_reason)
        return Counts(**{k: sum(getattr(p, k) for p in parts) for k in COUNT_FIELDS},
                      evicted_by_reason=dict(reasons), lost_by_cause=dict(causes),
                      quarantined_by_reason=dict(quarantine))


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
class Cost:
    """What delivery cost (lab/checker/cost.py)."""

    sent: int = 0
    first: int = 0
    resent: int = 0
    amplification: float | None = None
    sent_per_stored: float | None = None
    resent_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates_by_origin: dict[str, int] = field(default_factory=dict)
    outbox_at_broker_hwm: float | None = None
    broker_over_outbox: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Fidelity:
    """Whether the stack kept up with the timeline (lab/checker/fidelity.py)."""

    max_lag_s: float | None = None  # the bound, simulated seconds (None: not judged)
    lag_s: float = 0.0  # the worst steady lag seen
    lag_at: float | None = None  # when the stack was that far behind
    judged: int = 0  # readings captured outside disturbed periods
    outbox_at_lag: float = 0.0
    broker_at_lag: float | None = None
    faithful: bool | None = None
    reasons: tuple[str, ...] = ()
    speed_factor: float | None = None  # a speed this many times the run's would have kept up

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["reasons"] = list(self.reasons)
        return d


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
    delivery: Delivery
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
    cost: Cost = field(default_factory=Cost)
    fidelity: Fidelity = field(default_factory=Fidelity)
    clinical: Clinical | None = None  # what the outage cost the patients (None: no analysis stage ran)
    ec57: Ec57 | None = None  # the analysis' beat and episode scores (check() always sets it)
    # stored under a generated key with content the device did not make (another capture time):
    # a forgery that got in first; the genuine reading is then a conflict (lab/checker/forgeries.py)
    forged: tuple[Key, ...] = ()
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
        for r, n in t.quarantined_by_reason.items():
            m[f"quarantined.{r}"] = float(n)
        for q in QUANTILES:
            m[f"latency.{q}"] = getattr(self.latency, q)
            m[f"backlog_latency.{q}"] = getattr(self.backlog_latency, q)
        m["hwm.outbox"] = float(self.backlog.outbox_hwm)
        m["hwm.outbox_device"] = float(self.backlog.outbox_device_hwm)
        m["hwm.broker"] = self.backlog.broker_hwm
        m["broker.dropped"] = float(self.broker_dropped)
        m["fidelity.lag"] = self.fidelity.lag_s
        m["faithful"] = None if self.fidelity.faithful is None else float(self.fidelity.faithful)
        m["forged"] = float(len(self.forged))
        m["sent"] = float(self.cost.sent)
        m["resent"] = float(self.cost.resent)
        m["amplification"] = self.cost.amplification
        m["hwm.broker_over_outbox"] = self.cost.broker_over_outbox
        for r, n in self.cost.resent_by_reason.items():
            m[f"resent.{r}"] = float(n)
        drains = [w.outbox_drain_s for w in self.windows if w.end is not None]
        m["drain.max"] = (math.inf if any(d is None for d in drains)
                          else max((d for d in drains if d is not None), default=0.0))
        if self.clinical is not None:
            m.update(self.clinical.metrics())
        if self.ec57 is not None:
            m.update(self.ec57.metrics())
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

        ranges = self._lost_ranges()
        out: dict[str, Any] = {
            "delivery": str(self.delivery),
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
            "forged": keys(self.forged),
            "latency_s": self.latency.as_dict(),
            "backlog_latency_s": self.backlog_latency.as_dict(),
            "backlog": self.backlog.as_dict(),
            "windows": [w.as_dict() for w in self.windows],
            "broker": {"dropped": self.broker_dropped},
            "cost": self.cost.as_dict(),
            "fidelity": self.fidelity.as_dict(),
        }
        if self.clinical is not None:
            out["clinical"] = self.clinical.as_dict(max_listed)
        if self.ec57 is not None:
            out["ec57"] = self.ec57.as_dict()
        if self.ok is not None:
            out["verdict"] = {"ok": self.ok, "lines": list(self.verdict_lines)}
        return out

    def _lost_ranges(self) -> dict[str, dict[str, list[list[int]]]]:
        """Per device and cause, the lost seqs as ranges."""
        ranges: dict[str, dict[str, list[list[int]]]] = defaultdict(dict)
        by: dict[tuple[str, str], list[int]] = defaultdict(list)
        for loss in self.losses:
            by[(loss.key[0], loss.cause)].append(loss.key[2])
        for (dev, cause), seqs in sorted(by.items()):
            ranges[dev][cause] = seq_ranges(sorted(seqs))
        return ranges
