"""The fault windows of a history: their effective intervals, the broker's restarts without
persistence, the window a loss is tied to, and one report per window.

    FaultWindows(history, grace_s)          the effective intervals; containing(t), the
                                            non-persistent restarts (next_restart, in_restart)
    crash_window(windows, t, until, grace_s)  the fleet fault a device-crash loss is tied to
    window_reports(fw, losses, drains)      one WindowReport per window

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

A restart without persistence is a fault window on target "broker" whose fault is
"restart-no-persistence", or whose fault is kill / term / restart with persistence False (the
window's own flag, else History.broker_persistence); see broker-restart-no-persistence in
lab/checker/classify.py.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from lab.checker.measures import Drain
from lab.checker.result import Loss, WindowReport
from lab.history import FaultWindow, History

PROCESS_FAULTS = ("kill", "term", "stop", "restart", "restart-no-persistence")
RESTARTS = ("kill", "term", "restart")


def no_persistence(w: FaultWindow, broker_persistence: bool | None) -> bool:
    """The window is a broker restart without persistence (broker_persistence: the stack's)."""
    if w.target != "broker":
        return False
    if w.fault == "restart-no-persistence":
        return True
    persistence = w.persistence if w.persistence is not None else broker_persistence
    return w.fault in RESTARTS and persistence is False


def persistent_crash(w: FaultWindow, broker_persistence: bool | None) -> bool:
    """The window is a kill -9 of a broker with persistence on: Mosquitto's persistence is a
    snapshot every autosave_interval, so what it acknowledged since the last one is gone."""
    persistence = w.persistence if w.persistence is not None else broker_persistence
    return w.target == "broker" and w.fault == "kill" and persistence is True


class FaultWindows:
    """The history's fault windows with their effective intervals (pure, built once)."""

    def __init__(self, history: History, grace_s: float) -> None:
        self.windows: list[FaultWindow] = list(history.faults)
        self._receives = sorted([s.received_at if s.received_at is not None else s.t
                                 for s in history.stored] + [d.t for d in history.duplicates])
        self.restored: dict[str, float | None] = {w.id: self._restored_at(w) for w in self.windows}
        # Effective intervals, the latest-starting window first.
        self._spans = sorted(((w.start - grace_s, self._until(w), w) for w in self.windows),
                             key=lambda x: -x[2].start)
        restarts = [w for w in self.windows if no_persistence(w, history.broker_persistence)]
        self._restart_starts = sorted(w.start for w in restarts)
        self._restart_spans = [(w.start, self._until(w)) for w in restarts]
        self._crashes = sorted((w for w in self.windows if persistent_crash(w, history.broker_persistence)),
                               key=lambda w: w.start)
        self._crash_starts = [w.start for w in self._crashes]

    def _restored_at(self, w: FaultWindow) -> float | None:
        """The first ingest receive at or after the window's end (None: open or never)."""
        if w.end is None:
            return None
        i = bisect.bisect_left(self._receives, w.end)
        return self._receives[i] if i < len(self._receives) else None

    def restored_until(self, w: FaultWindow) -> float:
        """When ingest was first seen receiving after window w (inf: never)."""
        return self._until(w)

    def _until(self, w: FaultWindow) -> float:
        restored = self.restored[w.id]
        return math.inf if restored is None else restored

    def containing(self, t: float) -> FaultWindow | None:
        """The latest-starting window whose effective interval contains t."""
        for lo, hi, w in self._spans:
            if lo <= t <= hi:
                return w
        return None

    def next_restart(self, t: float) -> float | None:
        """The start of the first broker restart without persistence at or after t."""
        i = bisect.bisect_left(self._restart_starts, t)
        return self._restart_starts[i] if i < len(self._restart_starts) else None

    def next_crash(self, t: float) -> FaultWindow | None:
        """The first kill -9 of a persistent broker starting at or after t."""
        i = bisect.bisect_left(self._crash_starts, t)
        return self._crashes[i] if i < len(self._crashes) else None

    def crash_before(self, t: float) -> FaultWindow | None:
        """The kill -9 of a persistent broker that ended at or before t while ingest had not
        been seen receiving since (t in [its end, the first receive after it]); None if none."""
        i = bisect.bisect_right(self._crash_starts, t)
        for w in reversed(self._crashes[:i]):
            if w.end is not None and w.end <= t <= self._until(w):
                return w
        return None

    def in_restart(self, t: float) -> bool:
        """t lies in the effective interval of a broker restart without persistence."""
        return any(lo <= t <= hi for lo, hi in self._restart_spans)


def crash_window(windows: Sequence[FaultWindow], t: float, until: float,
                 grace_s: float) -> FaultWindow | None:
    """The first process fault on the fleet that started between generation (at t) and the
    next boot (at `until`, inf without one)."""
    for w in sorted(windows, key=lambda w: w.start):
        if w.target in ("devices", "fleet") and w.fault in PROCESS_FAULTS \
                and t - grace_s <= w.start <= until:
            return w
    return None


def window_reports(fw: FaultWindows, losses: Sequence[Loss],
                   drains: Sequence[Drain]) -> tuple[WindowReport, ...]:
    """One report per window (drains: measures.window_drains, in window order)."""
    by_window: dict[str, Counter[str]] = defaultdict(Counter)
    for loss in losses:
        if loss.window is not None:
            by_window[loss.window][loss.cause] += 1
    return tuple(
        WindowReport(
            id=w.id, fault=w.fault, target=w.target, start=w.start, end=w.end,
            restored_at=fw.restored[w.id], lost=sum(by_window[w.id].values()),
            lost_by_cause=dict(by_window[w.id]), outbox_before=int(d.outbox_before),
            outbox_drain_s=d.outbox_drain_s, broker_before=d.broker_before,
            broker_drain_s=d.broker_drain_s,
        )
        for w, d in zip(fw.windows, drains, strict=True)
    )
