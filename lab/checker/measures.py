"""The checker's extra measures: latency, backlog, drain and reordering, each a pure function.

    quantiles(values)                         p50/p90/p99/max
    latencies(index)                          (latency, backlog_latency)
    outbox_levels(index)                      the fleet's outbox level over time, its high-water marks
    broker_queue(samples)                     the broker's queue over time, its high-water mark
    backlog(outbox, queue)                    the Backlog of a result
    window_drains(windows, outbox, queue)     per window: level before, seconds to drain after
    reordered(history)                        per device, stored events out of seq order

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

The release event is defined in lab/checker/index.py.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from lab.checker.index import ReadingIndex
from lab.checker.result import Backlog, Quantiles
from lab.history import BrokerSample, FaultWindow, History


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


def latencies(ix: ReadingIndex) -> tuple[Quantiles, Quantiles]:
    """(latency of every stored reading, latency of those with the backlog flag)."""
    stored = ix.stored.values()
    return (quantiles([s.latency_s for s in stored]),
            quantiles([s.latency_s for s in stored if s.backlog]))


class Series:
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


class OutboxLevels(NamedTuple):
    series: Series  # the fleet's outbox total
    hwm: int
    hwm_at: float | None
    device_hwm: int
    device_hwm_device: str | None


def _outbox_changes(ix: ReadingIndex) -> list[tuple[float, int, str, int]]:
    """(time, history index, device, +1 | −1) for every committed reading, in history order."""
    changes: list[tuple[float, int, str, int]] = []
    for key, gi in ix.generated.items():
        if not ix.committed[key]:
            continue
        changes.append((ix.time(gi), gi, key[0], +1))
        ri, xi = ix.release.get(key), ix.evicted.get(key)
        out_i = ri if xi is None else xi if ri is None else min(ri, xi)
        if out_i is not None:
            changes.append((ix.time(out_i), out_i, key[0], -1))
    changes.sort()
    return changes


def outbox_levels(ix: ReadingIndex) -> OutboxLevels:
    """The device outboxes reconstructed from events in history order."""
    level = 0
    times: list[float] = []
    values: list[int] = []
    dev_level: dict[str, int] = defaultdict(int)
    best, best_at, dev_best, dev_best_id = 0, None, 0, None
    for t, _, dev, delta in _outbox_changes(ix):
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
    return OutboxLevels(Series(times, [float(v) for v in values]), best, best_at, dev_best, dev_best_id)


class BrokerQueue(NamedTuple):
    series: Series | None  # None: no sample reported the queue
    baseline: float | None  # the first sampled value
    peak: tuple[float, float] | None  # (t, value) of the highest sample


def broker_queue(samples: Sequence[BrokerSample]) -> BrokerQueue:
    """The broker's queue (store/messages/count − retained) from the $SYS samples."""
    queue = [(s.t, s.queued) for s in sorted(samples, key=lambda s: s.t) if s.queued is not None]
    if not queue:
        return BrokerQueue(None, None, None)
    return BrokerQueue(Series([t for t, _ in queue], [v for _, v in queue]), queue[0][1],
                       max(queue, key=lambda x: x[1]))


def backlog(outbox: OutboxLevels, queue: BrokerQueue) -> Backlog:
    peak, baseline = queue.peak, queue.baseline
    return Backlog(
        outbox_hwm=outbox.hwm, outbox_hwm_at=outbox.hwm_at, outbox_device_hwm=outbox.device_hwm,
        outbox_device_hwm_device=outbox.device_hwm_device,
        broker_hwm=None if peak is None or baseline is None else max(0.0, peak[1] - baseline),
        broker_hwm_at=None if peak is None else peak[0], broker_baseline=baseline,
    )


class Drain(NamedTuple):
    outbox_before: float
    outbox_drain_s: float | None
    broker_before: float | None
    broker_drain_s: float | None


def window_drains(windows: Sequence[FaultWindow], outbox: Series,
                  broker: Series | None) -> list[Drain]:
    """Per window, in order: the levels just before its start and the drain times after its end."""
    drains = []
    for w in windows:
        before = outbox.before(w.start)
        b_before = None
        b_drain = None
        if broker is not None and broker.times[0] <= w.start:
            b_before = broker.at(w.start)
            if w.end is not None:
                b_drain = broker.drain(w.end, b_before)
        drains.append(Drain(before, None if w.end is None else outbox.drain(w.end, before),
                            b_before, b_drain))
    return drains


def reordered(history: History) -> Counter[str]:
    """Per device, the stored events whose seq is lower than one stored before (store order)."""
    out: Counter[str] = Counter()
    high: dict[str, int] = {}
    for s in sorted(history.stored, key=lambda s: s.t):
        if s.seq < high.get(s.dev, -1):
            out[s.dev] += 1
        high[s.dev] = max(high.get(s.dev, -1), s.seq)
    return out
