"""Readings from the NATS JetStream cluster (docs/nats.md, "Ingest on the NATS cluster").

A `Source` for ingest/service.py. nats-py (asyncio) lives entirely in this module, on one event
loop in one background thread owned by NatsSource; the service's thread only meets it through
the BatchQueue and ack_broker().

Readings: the cluster's MQTT listener stores every QoS 1 PUBLISH in the stream `$MQTT_msgs`
under `$MQTT.msgs.<subject>` before it PUBACKs it (heartcheck/d1/ecg → heartcheck.d1.ecg). MQTT
shared subscriptions do not work there, so every worker fetches from ONE durable JetStream pull
consumer, `ecgpipe-ingest` (filter `$MQTT.msgs.heartcheck.*.ecg`, explicit acks, deliver all,
a bounded max_ack_pending): JetStream hands each message to one fetcher. Each worker creates it
if missing (the create is idempotent for an identical configuration; a different one is used
as it is). The stream has interest retention: a message published while no consumer matches
it is dropped at once (PUBACKed all the same), so the consumer must exist before the devices
publish, and it is kept: a stopped ingest leaves it, and it holds the backlog meanwhile.

ack_broker() acks exactly the given messages, on the loop thread, after the service's commit.
A worker killed before it acks: JetStream hands the messages to a fetcher again after
`ack_wait` (duplicates, never loss). An ack lost on the way has the same effect.

Topics: NATS 2.9.10 turns an MQTT topic into a subject by '/' → '.', and marks an empty level
with a '/' inside a token ("heartcheck//ecg" → "heartcheck./.ecg"); a topic with '.' or ' ' is
refused at PUBLISH (no PUBACK, the connection closed); every other character is kept (measured,
tests/ingest/test_nats_source.py). So a middle token without '/' maps back exactly to
heartcheck/<token>/ecg (validate() then judges the device id); any other subject is handed over
as it is, as the message's topic, and validate() quarantines it as bad-topic.

Acks and status: one paho MQTT 3.1.1 client (clean session: it only publishes) to one of the
MQTT servers, the next one after each failure. It publishes the end-to-end acks (QoS 1) and the
retained status with its Last Will, as the Subscriber does. The readings' "session" is the
durable consumer: the announced session name is `<durable>@<its created time>`, the same for
every worker, changed only if the consumer was lost and created again (devices re-send then).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import paho.mqtt.client as mqtt
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ecgcore.clock import Clock
from ecgcore.credentials import ClientCredentials, CredentialsError, client_tls_context
from ingest.announce import Announcer, random_name
from ingest.errors import ConfigError, ConnectError
from ingest.handoff import BatchQueue
from ingest.mqtt_shared import (
    InboundMessage,
    SubscriberStats,
    announce_online,
    flush,
    no_log,
    publish_acks,
    publish_offline,
    set_login,
)
from wire.errors import WireError
from wire.topics import ROOT, ingest_status_topic

STREAM = "$MQTT_msgs"
SUBJECT_PREFIX = "$MQTT.msgs."
DURABLE = "ecgpipe-ingest"
FILTER = f"{SUBJECT_PREFIX}{ROOT}.*.ecg"


@dataclass(frozen=True)
class NatsConfig:
    servers: tuple[str, ...]  # nats://host:port of the cluster's nodes
    mqtt_servers: tuple[tuple[str, int], ...]  # (host, MQTT port): acks and status
    client_id: str = "ecgpipe-ingest"
    worker: str | None = None  # its own status topic, as SubscriberConfig.worker
    durable: str = DURABLE
    ack_wait_s: float = 30.0
    max_ack_pending: int = 2_000  # of the consumer, all workers together
    fetch_batch: int = 500
    fetch_timeout_s: float = 1.0  # also how late a stop is seen
    queue_size: int = 2_000
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 4.0
    # its login on both sides: the NATS client connection (user, password, and with TLS its
    # certificate, as the MQTT side); None: anonymous, plaintext
    credentials: ClientCredentials | None = field(default=None, repr=False)

    @property
    def status_topic(self) -> str:
        return ingest_status_topic(self.worker)

    def __post_init__(self) -> None:
        if not self.servers or not all(s.startswith(("nats://", "tls://")) for s in self.servers):
            raise ConfigError("NATS servers must be nats://HOST:PORT, at least one")
        if not self.mqtt_servers or not all(h and 1 <= p <= 65_535 for h, p in self.mqtt_servers):
            raise ConfigError("MQTT servers must be HOST:PORT, at least one")
        if not self.client_id:
            raise ConfigError("client id is empty")
        if not (self.ack_wait_s > 0 and self.fetch_timeout_s > 0):
            raise ConfigError("ack wait and fetch timeout must be positive")
        if min(self.max_ack_pending, self.fetch_batch, self.queue_size) < 1:
            raise ConfigError("max ack pending, fetch batch and queue size must be at least 1")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ConfigError("reconnect delays must satisfy 0 < min <= max")
        if self.worker is not None:
            try:
                ingest_status_topic(self.worker)
            except WireError as exc:
                raise ConfigError(str(exc)) from exc


def topic_of(subject: str) -> str:
    """heartcheck/<token>/ecg for `$MQTT.msgs.heartcheck.<token>.ecg` when the token maps back
    exactly (no '/'); otherwise the subject itself, which validate() quarantines (bad-topic)."""
    parts = subject[len(SUBJECT_PREFIX):].split(".") if subject.startswith(SUBJECT_PREFIX) else []
    if len(parts) == 3 and parts[0] == ROOT and parts[2] == "ecg" and parts[1] and "/" not in parts[1]:
        return f"{ROOT}/{parts[1]}/ecg"
    return subject


def session_name(durable: str, info: ConsumerInfo) -> str:
    created = info.created
    stamp = created.isoformat() if isinstance(created, datetime) else str(created)
    return f"{durable}@{stamp}"


class _Names:
    """The Announcer's names: random for the process (`boot`), then the consumer's session."""

    def __init__(self) -> None:
        self.session: str | None = None

    def __call__(self) -> str:
        return random_name() if self.session is None else self.session


def _nats_login(creds: ClientCredentials | None) -> dict[str, Any]:
    """nats.connect()'s login arguments: the same identity as the MQTT side (its TLS context made
    once, here; CredentialsError when its files are unusable); {} for an anonymous client."""
    if creds is None:
        return {}
    login: dict[str, Any] = {"user": creds.username, "password": creds.password}
    if creds.tls is not None:
        login["tls"] = client_tls_context(creds.tls)
    return login


class NatsSource:
    """Fetches from the shared durable consumer; acks and status over MQTT 3.1.1."""

    def __init__(self, config: NatsConfig, clock: Clock, log: Callable[[str], None] = no_log, *,
                 session_path: Path | None = None, status_key: bytes | None = None,
                 announce: bool = True) -> None:
        self.config, self.clock, self.log = config, clock, log
        self.queue: BatchQueue[InboundMessage] = BatchQueue(maxsize=config.queue_size)
        self.ready = threading.Event()
        self.stats = SubscriberStats()  # connects/disconnects: the NATS connection's
        self.mqtt_connects = self.mqtt_disconnects = self.ack_errors = 0
        self._names = _Names()
        self.announcer = Announcer(session_path, new_name=self._names, key=status_key) if announce else None
        self._lock = threading.Lock()  # guards _pending, _token and the announce
        self._pending: dict[int, Msg] = {}
        self._token = 0
        self._nats_up = self._mqtt_up = self._fetching = False
        self._mqtt_index = 0
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ack_tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        try:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id,
                                 clean_session=True, protocol=mqtt.MQTTv311, reconnect_on_failure=True)
            set_login(client, config.credentials)
            # paho annotates the delays as int but only adds, doubles and compares them
            client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)  # type: ignore[arg-type]
            self._nats_login = _nats_login(config.credentials)
        except (ValueError, TypeError, CredentialsError) as exc:
            raise ConnectError(f"cannot create the MQTT client: {exc}") from exc
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        self._client = client

    @property
    def connected(self) -> bool:
        return self._nats_up and self._mqtt_up

    # ---- lifecycle (the service's thread) ----------------------------------------------------

    def start(self) -> None:
        if self.announcer is not None:  # the broker says "offline" for us if the link dies
            self._client.will_set(self.config.status_topic, self.announcer.offline(self.clock.now()),
                                  qos=1, retain=True)
        host, port = self.config.mqtt_servers[0]
        try:
            self._client.connect_async(host, port, keepalive=self.config.keepalive_s)
        except (ValueError, OSError) as exc:
            raise ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        self._client.loop_start()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="ingest-nats", daemon=True)
        self._thread.start()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop fetching (acks already given are sent and flushed), then the MQTT side: the
        offline status, a flush, DISCONNECT. Messages fetched and not acked are redelivered
        after ack_wait."""
        self._stopping.set()
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(self._wake_up)
        thread.join(self.config.fetch_timeout_s + 15)
        if thread.is_alive():
            self.log("the NATS thread did not stop in time")
        if self._mqtt_up:
            if self.announcer is not None:
                publish_offline(self._client, self.config.status_topic, self.announcer, self.clock)
            self.stats.flushed_on_stop = flush(self._client, self.config.client_id, flush_timeout_s)
        self._client.disconnect()
        self._client.loop_stop()
        self._mqtt_up = False
        self._thread = None
        self.ready.clear()
        with self._lock:
            self._pending.clear()

    # ---- to the brokers (the service's thread) -----------------------------------------------

    def ack_broker(self, deliveries: Sequence[InboundMessage]) -> int:
        """Ack exactly these messages to JetStream (on the loop thread); returns how many."""
        with self._lock:
            msgs = [m for m in (self._pending.pop(d.mid, None) for d in deliveries) if m is not None]
        self.stats.stale_acks_skipped += len(deliveries) - len(msgs)
        loop = self._loop
        if not msgs or loop is None:
            return 0
        try:
            loop.call_soon_threadsafe(self._ack_soon, msgs)
        except RuntimeError:  # the loop is closed: JetStream redelivers them after ack_wait
            self.stats.stale_acks_skipped += len(msgs)
            return 0
        self.stats.broker_acks += len(msgs)
        return len(msgs)

    def publish_acks(self, messages: Sequence[tuple[str, bytes]]) -> int:
        return publish_acks(self._client, messages, self.stats)

    # ---- the event loop thread -------------------------------------------------------------

    def _run_loop(self) -> None:
        loop = self._loop
        if loop is None:  # start() makes it before the thread
            return
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or less when stop() wakes us."""
        if self._wake is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)

    def _ack_soon(self, msgs: list[Msg]) -> None:
        task = asyncio.get_running_loop().create_task(self._ack(msgs))
        self._ack_tasks.add(task)
        task.add_done_callback(self._ack_tasks.discard)

    async def _ack(self, msgs: list[Msg]) -> None:
        for m in msgs:
            try:
                await m.ack()
            except (nats.errors.Error, OSError) as exc:  # redelivered after ack_wait: a duplicate
                self.ack_errors += 1
                if self.ack_errors in (1, 10) or self.ack_errors % 1000 == 0:
                    self.log(f"ack to JetStream failed ({exc}; {self.ack_errors} so far)")

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        nc = await self._connect()
        if nc is None:
            return
        try:
            await self._consume(nc)
        finally:
            if self._ack_tasks:
                await asyncio.gather(*self._ack_tasks, return_exceptions=True)
            try:
                await nc.flush(timeout=2)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                self.log(f"flushing the acks to NATS failed ({exc}): JetStream redelivers them")
            await nc.close()
            self._nats_up = False

    async def _connect(self) -> NatsClient | None:
        delay = self.config.reconnect_min_s
        while not self._stopping.is_set():
            try:
                nc = await nats.connect(
                    servers=list(self.config.servers), name=self.config.client_id,
                    allow_reconnect=True, max_reconnect_attempts=-1, connect_timeout=2,
                    reconnect_time_wait=self.config.reconnect_min_s,
                    disconnected_cb=self._nats_disconnected, reconnected_cb=self._nats_reconnected,
                    error_cb=self._nats_error, **self._nats_login)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                self.stats.connect_failures += 1
                if self.stats.connect_failures in (1, 10) or self.stats.connect_failures % 100 == 0:
                    self.log(f"cannot reach NATS at {', '.join(self.config.servers)} ({exc}); retrying")
                await self._sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
                continue
            self._nats_up = True
            self.stats.connects += 1
            self.log(f"connected to NATS {nc.connected_url.netloc if nc.connected_url else '?'}")
            return nc
        return None

    async def _consume(self, nc: NatsClient) -> None:
        js = nc.jetstream(timeout=5)
        psub: JetStreamContext.PullSubscription | None = None
        delay = self.config.reconnect_min_s
        while not self._stopping.is_set():
            try:
                if psub is None:
                    psub = await self._bind(js)
                free = self.queue.maxsize - self.queue.qsize()
                if free <= 0:
                    await self._sleep(0.02)
                    continue
                if not self._fetching:
                    self._fetching = True
                    self._update_ready()
                msgs = await psub.fetch(min(self.config.fetch_batch, free),
                                        timeout=self.config.fetch_timeout_s)
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.Error, OSError, TimeoutError) as exc:  # failover, consumer lost
                self.log(f"fetching from {self.config.durable} failed ({type(exc).__name__}: {exc});"
                         " binding again")
                psub = None
                await self._sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
                continue
            delay = self.config.reconnect_min_s
            for m in msgs:
                await self._hand_over(m)

    async def _bind(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        """Create the durable consumer if missing (idempotent) and bind to it; announce its
        session when it is new to us."""
        cfg = self.config
        want = ConsumerConfig(durable_name=cfg.durable, filter_subject=FILTER,
                              ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                              max_ack_pending=cfg.max_ack_pending, ack_wait=cfg.ack_wait_s)
        try:
            info = await js.add_consumer(STREAM, want)
        except nats.js.errors.BadRequestError as exc:  # exists with another configuration
            info = await js.consumer_info(STREAM, cfg.durable)
            self.log(f"consumer {cfg.durable} exists with another configuration ({exc}); using it")
        psub = await js.pull_subscribe_bind(cfg.durable, STREAM)
        name = session_name(cfg.durable, info)
        if name != self._names.session:
            self.log(f"consumer {cfg.durable} on {STREAM}: created {info.created},"
                     f" {info.num_pending} pending, {info.num_ack_pending} in flight")
            self._names.session = name
            self._announce()
        return psub

    async def _hand_over(self, m: Msg) -> None:
        with self._lock:
            self._token += 1
            token = self._token
            self._pending[token] = m
        message = InboundMessage(topic_of(m.subject), bytes(m.data), token, 1, self.clock.now(), 0)
        self.stats.received += 1
        try:
            self.queue.put_nowait(message)
            return
        except queue.Full:
            self.stats.blocked_puts += 1
        while not self._stopping.is_set():  # wait for room without blocking the loop (acks)
            await self._sleep(0.01)
            try:
                self.queue.put_nowait(message)
                return
            except queue.Full:
                continue
        self.stats.given_up_puts += 1  # never acked: JetStream redelivers it
        with self._lock:
            self._pending.pop(token, None)

    async def _nats_disconnected(self) -> None:
        if self._nats_up:
            self.stats.disconnects += 1
        self._nats_up = False
        self._update_ready()
        if not self._stopping.is_set():
            self.log("disconnected from NATS; reconnecting")

    async def _nats_reconnected(self) -> None:
        self._nats_up = True
        self.stats.connects += 1
        self._update_ready()
        self.log("reconnected to NATS")

    async def _nats_error(self, exc: Exception) -> None:
        if not self._stopping.is_set():
            self.log(f"NATS: {type(exc).__name__}: {exc}")

    # ---- status and readiness (either thread) ------------------------------------------------

    def _announce(self) -> None:
        """The retained online status, once the consumer is known and MQTT is connected."""
        ann = self.announcer
        with self._lock:
            session = self._names.session
            if ann is not None and session is not None and self._mqtt_up:
                present = ann.session == session
                self.stats.last_session_present = present
                announce_online(self._client, self.config.status_topic, ann, present, self.clock,
                                self.log)
        self._update_ready()

    def _update_ready(self) -> None:
        if self._nats_up and self._fetching and self._mqtt_up and self._names.session is not None:
            self.ready.set()
        else:
            self.ready.clear()

    # ---- paho callbacks (paho's thread) ------------------------------------------------------

    def _where(self) -> str:
        host, port = self.config.mqtt_servers[self._mqtt_index]
        return f"{host}:{port}"

    def _next_server(self, client: mqtt.Client) -> None:
        """Try the next MQTT server at paho's next attempt (connect_async only sets the address)."""
        if len(self.config.mqtt_servers) > 1 and not self._stopping.is_set():
            self._mqtt_index = (self._mqtt_index + 1) % len(self.config.mqtt_servers)
            host, port = self.config.mqtt_servers[self._mqtt_index]
            client.connect_async(host, port, keepalive=self.config.keepalive_s)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self.stats.connect_failures += 1
            self.log(f"MQTT connect refused by {self._where()}: {reason_code}")
            return
        self._mqtt_up = True
        self.mqtt_connects += 1
        self.log(f"connected to MQTT {self._where()} as {self.config.client_id}")
        self._announce()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.stats.connect_failures += 1
        self.log(f"cannot reach MQTT {self._where()}; trying the next server")
        self._next_server(client)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        was, self._mqtt_up = self._mqtt_up, False
        self._update_ready()
        if was:
            self.mqtt_disconnects += 1
        if not self._stopping.is_set():
            self.log(f"MQTT {self._where()} disconnected ({reason_code}); reconnecting")
            self._next_server(client)
