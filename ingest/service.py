"""The ingest main loop, on the main thread:

    batch = up to max_batch deliveries from the subscriber's queue
    validate each                   (bad input becomes a Quarantined value, never an exception)
    store_batch(...)                one transaction, one commit
    publish end-to-end acks         only with acks enabled, only after the commit
    ack_broker(batch)               PUBACK every message of the batch, quarantined and
                                    duplicate ones too: all of them are durably recorded now

Batching: the loop waits up to `poll_s` for a first message, then takes whatever else is
already queued (up to max_batch), and waits at most `linger_s` more for stragglers
(default 0). Under load, messages pile up while a batch commits, so batches grow by
themselves: measured at ~8,500 msg/s, batches reached the 500 cap with no linger, and a
fixed linger would only add latency at low rates.

A store failure of a whole batch falls back to one transaction per message; a message whose
own insert fails is quarantined with reason "internal-error". If even that fails, the store
itself is broken: StoreError propagates and the process exits non-zero. Nothing of that
batch was acknowledged, so the broker redelivers it to the next run.

Stop (request_stop(), e.g. from SIGTERM): the current batch is finished, committed and
acknowledged, then the client disconnects. Messages still in the queue were never
acknowledged; the broker redelivers them to the next session.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from ecgcore.clock import Clock
from ecgcore.files import write_json_atomic
from ecgcore.logline import stamp
from ingest.acker import build_acks
from ingest.announce import SESSION_NAME, Announcer
from ingest.errors import StoreUnavailableError
from ingest.handoff import BatchQueue
from ingest.keys import IngestSecrets
from ingest.metrics import BatchOutcome, IngestMetrics
from ingest.nats_source import NatsConfig, NatsSource
from ingest.pg_store import where
from ingest.ratelimit import RateLimit
from ingest.store import BatchResult, Store
from ingest.store_open import open_store
from ingest.subscriber import InboundMessage, Subscriber, SubscriberConfig, SubscriberStats
from ingest.validate import Accepted, Quarantined, validate

DB_NAME = "ingest.sqlite"
READY_NAME = "ready.json"


class Source(Protocol):
    """What the service needs from the MQTT side (Subscriber, or a fake in tests)."""

    queue: BatchQueue[InboundMessage]
    ready: threading.Event
    stats: SubscriberStats

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def ack_broker(self, deliveries: Sequence[InboundMessage]) -> int: ...

    def publish_acks(self, messages: Sequence[tuple[str, bytes]]) -> int: ...


@dataclass(frozen=True)
class ServiceConfig:
    state_dir: Path
    host: str
    port: int
    client_id: str = "ecgpipe-ingest"
    acks: bool = False
    max_batch: int = 500
    linger_s: float = 0.0
    poll_s: float = 0.2  # real seconds; bounds how late a stop request or a stats line can be
    stats_interval_s: float = 10.0  # real seconds (scaled by the clock's speed)
    reconnect_max_s: float = 4.0  # real seconds between attempts to reach the broker again, at most
    keepalive_s: int = 30  # MQTT keepalive, real seconds
    session_expiry_s: int = 86_400  # how long the broker keeps our session while we are away
    # login, device keys (readings verified, acks signed) and the status key; None: anonymous,
    # nothing signed or verified (`ecgpipe up --insecure`)
    secrets: IngestSecrets | None = field(default=None, repr=False)
    # per-device token bucket (ingest/ratelimit.py): messages per second of the service's clock,
    # and how many at once; None: no limit
    rate_limit: float | None = None
    rate_burst: float = 5000.0
    # one of several ingest workers sharing the readings (ingest/subscriber.py, "Workers"): its
    # own ready file, session name, status topic and client id; None: the one ingest service
    worker: str | None = None
    # PostgreSQL (ingest/pg_store.py) instead of DIR/ingest/ingest.sqlite: its DSN; None: SQLite
    store_dsn: str | None = None
    # the NATS cluster (ingest/nats_source.py) instead of one MQTT broker: its nats:// servers
    # (readings from the shared JetStream consumer) and its MQTT listeners as (host, port)
    # (acks and status); () : the MQTT Subscriber on host:port
    nats_servers: tuple[str, ...] = ()
    mqtt_servers: tuple[tuple[str, int], ...] = ()
    nats_ack_wait_s: float = 30.0  # JetStream redelivers what a worker has not acked by then
    nats_max_ack_pending: int = 2_000  # the shared consumer's window, all workers together

    @property
    def ingest_dir(self) -> Path:
        return Path(self.state_dir) / "ingest"

    @property
    def db_path(self) -> Path:
        return self.ingest_dir / DB_NAME

    @property
    def ready_path(self) -> Path:
        return self.ingest_dir / worker_file(READY_NAME, self.worker)

    @property
    def session_path(self) -> Path:
        return self.ingest_dir / worker_file(SESSION_NAME, self.worker)


def worker_file(name: str, worker: str | None) -> str:
    """A per-process file's name: ready.json, or ready-<worker>.json for a worker."""
    if worker is None:
        return name
    stem, dot, ext = name.partition(".")
    return f"{stem}-{worker}{dot}{ext}"


@dataclass
class ServiceStats:
    batches: int = 0
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    conflicts: int = 0  # of the quarantined: a stored key again with other content
    refused: int = 0  # by the per-device rate limit, before validation (counted per device in the store)
    internal_errors: int = 0
    fallback_batches: int = 0
    store_retries: int = 0  # a batch stored again after the store's server was away
    acks_sent: int = 0
    largest_batch: int = 0


def _topic_device(topic: str) -> str | None:
    """The device a topic heartcheck/<id>/<kind> names (unchecked: the limit only needs a key)."""
    parts = topic.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "heartcheck" else None


def _status_key(config: ServiceConfig) -> bytes | None:
    """Signs ingest's status in a secure stack (wire.status.status_key)."""
    return None if config.secrets is None else config.secrets.status_key


class IngestService:
    def __init__(
        self,
        config: ServiceConfig,
        clock: Clock,
        *,
        store: Store | None = None,
        source: Source | None = None,
        out: TextIO | None = None,
        metrics: IngestMetrics | None = None,
        real_clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config
        self.clock = clock
        self._out = out if out is not None else sys.stdout
        config.ingest_dir.mkdir(parents=True, exist_ok=True)
        # A ready.json left by an earlier run must not announce this one before it subscribed.
        config.ready_path.unlink(missing_ok=True)
        self.store: Store = store if store is not None else open_store(config.ingest_dir, config.store_dsn)
        self.source: Source = source if source is not None else self._default_source()
        self.stats = ServiceStats()
        self.limiter = (None if config.rate_limit is None
                        else RateLimit(rate=config.rate_limit, burst=config.rate_burst))
        self._stop = threading.Event()
        self.ready_written = threading.Event()
        # Prometheus metrics (ingest/metrics.py), counted once per batch; the real timer times
        # commits (machine seconds, whatever the clock's speed)
        self.metrics = metrics
        self._real = real_clock
        if metrics is not None:
            metrics.watch_source(lambda: self.source.connected, self.source.queue.qsize)

    def _default_source(self) -> Source:
        """The NATS cluster's shared consumer with --nats, else the MQTT Subscriber."""
        config, creds = self.config, None if self.config.secrets is None else self.config.secrets.credentials
        if config.nats_servers:
            return NatsSource(
                NatsConfig(config.nats_servers, config.mqtt_servers or ((config.host, config.port),),
                           config.client_id, worker=config.worker, ack_wait_s=config.nats_ack_wait_s,
                           max_ack_pending=config.nats_max_ack_pending, keepalive_s=config.keepalive_s,
                           reconnect_min_s=config.reconnect_max_s / 4,
                           reconnect_max_s=config.reconnect_max_s, credentials=creds),
                self.clock, self.log, session_path=config.session_path, status_key=_status_key(config))
        return Subscriber(
            SubscriberConfig(config.host, config.port, config.client_id,
                             keepalive_s=config.keepalive_s,
                             session_expiry_s=config.session_expiry_s,
                             reconnect_min_s=config.reconnect_max_s / 4,
                             reconnect_max_s=config.reconnect_max_s,
                             credentials=creds, worker=config.worker),
            self.clock, log=self.log,
            announcer=Announcer(config.session_path, key=_status_key(config)),
        )

    # ---- control ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current batch, then stop. Safe from signal handlers and other threads."""
        self._stop.set()

    def log(self, line: str) -> None:
        # ecgcore.logline's style, as `ecgpipe logs` prints (lab.observe.logs still reads the
        # older `ingest <epoch>` lines of old state dirs)
        self._out.write(f"{stamp(self.clock)} {line}\n")
        self._out.flush()

    # ---- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Run until request_stop(); returns the process exit code (0)."""
        self.log(f"starting: broker {self.config.host}:{self.config.port},"
                 f" client id {self.config.client_id}, acks {'on' if self.config.acks else 'off'},"
                 f" store {self._store_name()}")
        self.source.start()
        every = self.config.stats_interval_s * self.clock.speed
        next_stats = self.clock.monotonic() + every
        try:
            while not self._stop.is_set():
                if not self.ready_written.is_set() and self.source.ready.is_set():
                    self._write_ready()
                batch = self._next_batch()
                if batch:
                    self.handle_batch(batch)
                if self.clock.monotonic() >= next_stats:
                    self.log(self.stats_line())
                    next_stats = self.clock.monotonic() + every
        finally:
            self.source.stop()
            self.store.close()
            flushed = self.source.stats.flushed_on_stop
            self.log(f"stopped (flushed={flushed}). {self.stats_line()}")
        return 0

    def _store_name(self) -> str:
        dsn = self.config.store_dsn
        return str(self.config.db_path) if dsn is None else f"PostgreSQL {where(dsn)}"

    def _write_ready(self) -> None:
        write_json_atomic(
            self.config.ready_path,
            {"pid": os.getpid(), "at": self.clock.now(), "client_id": self.config.client_id},
        )
        self.ready_written.set()
        self.log(f"ready: subscribed, wrote {self.config.ready_path}")

    def _next_batch(self) -> list[InboundMessage]:
        q = self.source.queue
        batch = q.get_batch(self.config.max_batch, timeout=self.config.poll_s)
        if batch and self.config.linger_s > 0 and len(batch) < self.config.max_batch:
            batch.extend(q.get_batch(self.config.max_batch - len(batch), timeout=self.config.linger_s))
        return batch

    def handle_batch(self, batch: Sequence[InboundMessage]) -> BatchResult:
        """Validate, store (one commit), publish acks, PUBACK. Returns what was stored."""
        accepted: list[Accepted] = []
        quarantined: list[Quarantined] = []
        sec = self.config.secrets
        keys = None if sec is None else sec.readings
        refused: Counter[str] = Counter()
        for d in batch:
            dev = _topic_device(d.topic)
            if dev is not None and self._over_limit(dev, d):
                refused[dev] += 1  # before decoding anything: a flood costs a dict lookup
                continue
            v = validate(d.topic, d.payload, d.received_at, keys)
            if isinstance(v, Accepted):
                accepted.append(v)
            else:
                quarantined.append(v)
        stored_at = self.clock.now()
        began = self._real()
        try:
            result = self._store_when_reachable(accepted, quarantined, stored_at, refused)
        except StoreUnavailableError:
            raise  # stopping while the store is away: nothing of the batch acknowledged
        except Exception as exc:  # noqa: BLE001 - one bad message must not lose the batch
            self.log(f"batch of {len(batch)} failed to store ({exc}); storing one by one")
            self.stats.fallback_batches += 1
            result = self._store_one_by_one(accepted, quarantined, stored_at)
            if refused:
                self.store.store_batch([], [], stored_at, refused=refused)
        commit_s = self._real() - began
        self.stats.refused += sum(refused.values())
        # Committed. End-to-end acks are queued before the PUBACKs: paho writes packets in the
        # order they were queued, so a crash that loses an ack usually also loses the PUBACKs
        # and the broker redelivers (a duplicate, acked again) instead of the device waiting
        # for its ack timeout. Only when paho's outgoing window (20 QoS 1 messages in flight)
        # is full can a PUBACK overtake an ack; the device's resend covers that case.
        acks_sent = 0
        if self.config.acks:
            acks = build_acks(result, None if sec is None else sec.ack_key)
            acks_sent = self.source.publish_acks([(a.topic, a.payload) for a in acks])
            self.stats.acks_sent += acks_sent
        # Every message of the batch is recorded now, so the broker may forget them.
        self.source.ack_broker(batch)
        self._count(batch, result)
        if self.metrics is not None:
            self.metrics.observe_batch(BatchOutcome(len(batch), accepted, quarantined, result,
                                                    sum(refused.values()), commit_s, stored_at, acks_sent))
        return result

    def _store_when_reachable(self, accepted: Sequence[Accepted], quarantined: Sequence[Quarantined],
                              stored_at: float, refused: Counter[str]) -> BatchResult:
        """store_batch, again and again while the store's server is away (PostgreSQL killed or
        restarting): nothing of the batch is acknowledged meanwhile, so the broker keeps the rest
        of ingest's share queued and the devices keep theirs. Gives up only when asked to stop."""
        delay, waited = 0.1, 0
        while True:
            try:
                return (self.store.store_batch(accepted, quarantined, stored_at, refused=refused)
                        if refused else self.store.store_batch(accepted, quarantined, stored_at))
            except StoreUnavailableError as exc:
                if waited == 0:
                    self.log(f"store unavailable ({exc}); holding the batch and retrying")
                waited += 1
                self.stats.store_retries += 1
                if self._stop.wait(delay):
                    raise
                delay = min(2.0, delay * 2)

    def _over_limit(self, device_id: str, d: InboundMessage) -> bool:
        """The device's rate limit refuses this message (never, without a limit)."""
        return self.limiter is not None and not self.limiter.allow(device_id, d.received_at, len(d.payload))

    def _store_one_by_one(self, accepted: Sequence[Accepted], quarantined: Sequence[Quarantined],
                          stored_at: float) -> BatchResult:
        result = BatchResult()
        for a in accepted:
            try:
                result = result.merge(self.store.store_batch([a], [], stored_at))
            except Exception as exc:  # noqa: BLE001 - this one message becomes internal-error
                q = Quarantined(a.topic, "internal-error", f"storing failed: {exc}",
                                a.raw, a.received_at)
                result = result.merge(self.store.store_batch([], [q], stored_at))
                self._count_internal_error()
        for q in quarantined:
            try:
                result = result.merge(self.store.store_batch([], [q], stored_at))
            except Exception as exc:  # noqa: BLE001 - this one message becomes internal-error
                detail = f"{q.reason}: {q.detail}; storing failed: {exc}"
                q2 = Quarantined(q.topic, "internal-error", detail, q.raw, q.received_at)
                result = result.merge(self.store.store_batch([], [q2], stored_at))
                self._count_internal_error()
        return result

    def _count_internal_error(self) -> None:
        self.stats.internal_errors += 1

    def _count(self, batch: Sequence[InboundMessage], result: BatchResult) -> None:
        s = self.stats
        s.batches += 1
        s.messages += len(batch)
        s.largest_batch = max(s.largest_batch, len(batch))
        s.stored += len(result.stored)
        s.duplicates += len(result.duplicates)
        s.quarantined += result.quarantined
        s.conflicts += len(result.conflicts)

    def stats_line(self) -> str:
        s, src = self.stats, self.source.stats
        return (
            f"stats: stored={s.stored} duplicates={s.duplicates} quarantined={s.quarantined}"
            f" refused={s.refused} store_retries={s.store_retries}"
            f" conflicts={s.conflicts}"
            f" batches={s.batches} largest_batch={s.largest_batch}"
            f" queue={self.source.queue.qsize()}"
            f" blocked_puts={src.blocked_puts} connected={self.source.connected}"
            f" connects={src.connects} broker_acks={src.broker_acks}"
            f" stale_acks_skipped={src.stale_acks_skipped} acks_sent={s.acks_sent}"
        )

