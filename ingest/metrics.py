"""The ingest service's Prometheus metrics (docs/metrics.md), in a CollectorRegistry of its own.

The service loop calls `observe_batch` once per committed batch, with what it already knows
of that batch; nothing is counted per message in the loop, and the capture→store histogram
takes a whole batch's values under one lock (`BatchHistogram`). Every series carries the
label `worker`: the component's name (`ingest`, or `ingest-K` for worker K).

Per batch, every message delivered is counted once as received and once as one outcome:

    received = stored + duplicate + quarantined (every reason, `rate-limited` included)

`rate-limited` counts the rate limit's refusals (refused before decoding, never stored in
the quarantine table: the store counts them per device in its `refused` table).

Time. `commit_seconds` is real (machine) seconds, timed by the service's real timer: what a
commit costs. `capture_to_store_seconds` is stored_at − the end of the reading's capture
(captured_at + its samples' duration), both on the service's injected clock, as the store
records them: in a scenario run that is the shared simulated clock, so a 72-h outage shows
as 72 h, whatever the speed.

Thread safety: prometheus_client's metrics take their own locks, and BatchHistogram takes
its own; the HTTP server's thread only reads. The two gauges of the source (connected, queue)
are read at scrape time from plain attributes.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric

from ingest.store_common import RATE_LIMITED, BatchResult
from ingest.validate import REASONS, Accepted, Quarantined

PREFIX = "ecgpipe_ingest_"
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)  # the loop's cap is 500
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# a reading stored live is seconds old; one held back by an outage, hours or days (cardiocomm-72h)
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
               7200.0, 14_400.0, 43_200.0, 86_400.0, 172_800.0, 259_200.0, 604_800.0)


class BatchHistogram:
    """A histogram (a prometheus_client collector) observed a batch of values at a time."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 labels: dict[str, str]) -> None:
        self.name, self._doc, self._labels = name, documentation, dict(labels)
        self._bounds = sorted(float(b) for b in buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket, not cumulative; the last: +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Iterable[float]) -> None:
        counts, total, bounds = [0] * len(self._counts), 0.0, self._bounds
        for v in values:
            counts[bisect_left(bounds, v)] += 1  # the first bound >= v: Prometheus' `le`
            total += v
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
            self._sum += total

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self._doc, labels=list(self._labels))

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative = list(accumulate(counts))
        les = [repr(b) for b in self._bounds] + ["+Inf"]  # as prometheus_client writes `le`
        family = self._family()
        family.add_metric(list(self._labels.values()), list(zip(les, cumulative, strict=True)), total)
        yield family


@dataclass(frozen=True)
class BatchOutcome:
    """What the service loop knows of one committed batch."""

    received: int  # messages delivered, refused ones included
    accepted: Sequence[Accepted]
    quarantined: Sequence[Quarantined]  # by validation
    result: BatchResult
    refused: int  # by the rate limit, before validation
    commit_s: float  # real seconds the store took
    stored_at: float  # the service clock's time of the commit
    acks_sent: int = 0


class IngestMetrics:
    """The ingest process's metrics; `registry` is what its endpoint serves."""

    def __init__(self, worker: str = "ingest") -> None:
        self.worker = worker
        r = self.registry = CollectorRegistry()
        w = ["worker"]
        self.received = Counter(PREFIX + "readings_received", "Messages delivered to ingest (any outcome)",
                                w, registry=r).labels(worker)
        self.stored = Counter(PREFIX + "readings_stored", "Readings newly stored (committed)",
                              w, registry=r).labels(worker)
        self.duplicate = Counter(PREFIX + "readings_duplicate",
                                 "Readings received again with a key and content already stored",
                                 w, registry=r).labels(worker)
        self.quarantined = Counter(PREFIX + "readings_quarantined",
                                   "Messages quarantined, and refused by the rate limit, by reason",
                                   [*w, "reason"], registry=r)
        for reason in sorted(REASONS | {RATE_LIMITED}):
            self.quarantined.labels(worker, reason)  # every reason shows, at 0, from the start
        self.batch_readings = Histogram(PREFIX + "commit_batch_readings", "Messages per committed batch",
                                        w, buckets=BATCH_BUCKETS, registry=r).labels(worker)
        self.commit_seconds = Histogram(PREFIX + "commit_seconds",
                                        "Real seconds one batch's store transaction took",
                                        w, buckets=COMMIT_BUCKETS, registry=r).labels(worker)
        self.capture_to_store = BatchHistogram(
            PREFIX + "capture_to_store_seconds",
            "Seconds from the end of a reading's capture to its commit (the service's clock)",
            LAG_BUCKETS, {"worker": worker})
        r.register(self.capture_to_store)
        self.acks_sent = Counter(PREFIX + "acks_sent", "End-to-end acks published after commits",
                                 w, registry=r).labels(worker)

    def watch_source(self, connected: Callable[[], bool], queued: Callable[[], int]) -> None:
        """Gauges read at scrape time: the broker link's state, messages waiting for the loop."""
        r, w = self.registry, ["worker"]
        Gauge(PREFIX + "broker_connected", "1 while ingest's link to the broker is up",
              w, registry=r).labels(self.worker).set_function(lambda: float(connected()))
        Gauge(PREFIX + "queue_messages", "Messages received from the broker, not yet in a batch",
              w, registry=r).labels(self.worker).set_function(lambda: float(queued()))

    def observe_batch(self, b: BatchOutcome) -> None:
        """Count one committed batch (see the module docstring's identity)."""
        res = b.result
        self.received.inc(b.received)
        self.stored.inc(len(res.stored))
        self.duplicate.inc(len(res.duplicates))
        reasons = Tally(q.reason for q in b.quarantined)
        reasons["conflict"] += len(res.conflicts)
        # a reading whose own insert failed was quarantined by the fallback (internal-error)
        reasons["internal-error"] += max(0, res.quarantined - len(b.quarantined) - len(res.conflicts))
        reasons[RATE_LIMITED] += b.refused
        for reason, n in reasons.items():
            if n:
                self.quarantined.labels(self.worker, reason).inc(n)
        self.batch_readings.observe(b.received)
        self.commit_seconds.observe(b.commit_s)
        if res.stored:
            self.capture_to_store.observe_many(_lags(b.accepted, res.stored, b.stored_at))
        if b.acks_sent:
            self.acks_sent.inc(b.acks_sent)


def _lags(accepted: Sequence[Accepted], stored: Sequence[tuple[str, int, int]],
          stored_at: float) -> list[float]:
    """stored_at − capture end of each newly stored reading, once per key (a key repeated in
    the batch is stored once: the other copies are duplicates)."""
    fields = [a.fields for a in accepted]
    if len(stored) != len(fields):  # duplicates or conflicts among them: only the stored, once each
        left = set(stored)
        chosen = []
        for f in fields:
            key = (f.device_id, f.boot_epoch, f.seq)
            if key in left:
                left.discard(key)
                chosen.append(f)
        fields = chosen
    return [stored_at - f.captured_at - (f.n_samples / f.sample_rate_hz if f.sample_rate_hz else 0.0)
            for f in fields]
