"""The MQTT side of ingest: one paho client on its own thread (ingest.paho_client.BufferedClient:
paho's Client reading in large gulps and sending a batch's PUBACKs in one write).

Connection: MQTT v5, clean_start=False and a Session Expiry Interval, so the broker keeps our
subscription and queues QoS 1 readings while we are down; it subscribes to heartcheck/+/ecg
at QoS 1 on every connect (whether or not the session was present: it is idempotent).

Workers (SubscriberConfig.worker): several ingest processes share the readings through one
MQTT shared subscription, $share/ecgpipe-ingest/heartcheck/+/ecg. Mosquitto 2.0.11 hands each
message to the group's members in turn, and a member whose session is kept while it is away
(ours: clean_start=False) keeps getting its turn: its share waits in its session queue (and is
dropped past max_queued_messages) until it is back. Measured (tests/ingest/test_workers.py):
two persistent members, one disconnected, 100 messages: 50 went to the connected one, 50
waited and arrived when the other came back. A dead worker is not failed over.

Manual PUBACK: `manual_ack_set(True)`. Nothing is acknowledged to the broker in the callback;
the service calls ack_broker() only after the transaction holding the messages committed.
A kill -9 before the commit therefore makes the broker redeliver.

Message ids are only meaningful on the connection that delivered them: after a reconnect the
broker reuses ids for the messages it redelivers. Each InboundMessage therefore carries the
connection `generation` it came on (bumped on every connect and disconnect), and
ack_broker() skips stale ones. The broker redelivers those (same session), they are stored
again as duplicates, and acknowledged then.

Receive Maximum: Mosquitto's `max_inflight_messages` (20 in the lab config) would hold at
most 20 unacknowledged messages in flight to us, i.e. batches of at most 20. An MQTT v5
client's Receive Maximum in CONNECT overrides it (measured with Mosquitto 2.0.11: with
nothing acknowledged, 20 of 300 delivered without it, exactly 1000 of 3000 with
ReceiveMaximum=1000), so we announce `receive_maximum` (default 1000) to get large batches.
It is not a hard bound under a live flow (up to ~1,800 unacknowledged were seen in hand), so
the bounded queue below is what bounds our memory.

Backpressure: the callback puts (topic, payload, mid, qos, received_at) on a bounded
ingest.handoff.BatchQueue. When it is full, the callback blocks (counted in `blocked_puts`), so paho stops
reading the socket and TCP pushes back on the broker. While stopping, a blocked callback
gives up: that message was never acknowledged, so the broker redelivers it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ecgcore.clock import Clock
from ecgcore.credentials import ClientCredentials, CredentialsError
from ingest.announce import Announcer
from ingest.errors import ConfigError, ConnectError
from ingest.handoff import BatchQueue
from ingest.mqtt_shared import (
    SYNC_TOPIC,
    InboundMessage,
    SubscriberStats,
    announce_online,
    flush,
    no_log,
    publish_acks,
    publish_offline,
    set_login,
)
from ingest.paho_client import BufferedClient
from wire.errors import WireError
from wire.topics import INGEST_SHARE_GROUP, ecg_subscription, ingest_status_topic

__all__ = ["SYNC_TOPIC", "InboundMessage", "Subscriber", "SubscriberConfig", "SubscriberStats"]


@dataclass(frozen=True)
class SubscriberConfig:
    host: str
    port: int
    client_id: str = "ecgpipe-ingest"
    session_expiry_s: int = 86_400
    keepalive_s: int = 30
    queue_size: int = 2_000
    receive_maximum: int = 1_000
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 4.0
    credentials: ClientCredentials | None = field(default=None, repr=False)  # None: anonymous
    # one of several ingest workers: readings come through the shared subscription
    # $share/ecgpipe-ingest/heartcheck/+/ecg (the broker hands each to one worker), and the
    # status goes to this worker's own topic; None: the one ingest service
    worker: str | None = None

    @property
    def subscription(self) -> str:
        return ecg_subscription(None if self.worker is None else INGEST_SHARE_GROUP)

    @property
    def status_topic(self) -> str:
        return ingest_status_topic(self.worker)

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("broker host is empty")
        if not 1 <= self.port <= 65_535:
            raise ConfigError(f"broker port {self.port} is not in 1..65535")
        if not self.client_id or len(self.client_id.encode()) > 65_535:
            raise ConfigError("client id must be 1..65535 bytes")
        if not 0 <= self.session_expiry_s <= 2**32 - 1:
            raise ConfigError(f"session expiry {self.session_expiry_s} s is out of range")
        if not 1 <= self.receive_maximum <= 65_535:
            raise ConfigError(f"receive maximum {self.receive_maximum} is not in 1..65535")
        if self.queue_size < 1:
            raise ConfigError(f"queue size {self.queue_size} must be at least 1")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ConfigError("reconnect delays must satisfy 0 < min <= max")
        if self.worker is not None:
            try:
                ingest_status_topic(self.worker)
            except WireError as exc:
                raise ConfigError(str(exc)) from exc


class Subscriber:
    """One MQTT v5 client with manual PUBACK, feeding a bounded queue of Deliveries."""

    def __init__(self, config: SubscriberConfig, clock: Clock,
                 log: Callable[[str], None] = no_log, announcer: Announcer | None = None) -> None:
        self.config = config
        self.clock = clock
        self.log = log
        self.announcer = announcer
        self.queue: BatchQueue[InboundMessage] = BatchQueue(maxsize=config.queue_size)
        self.ready = threading.Event()  # set after each successful SUBACK, cleared on disconnect
        self.stats = SubscriberStats()
        self._lock = threading.Lock()  # guards _generation/_connected against ack_broker
        self._generation = 0
        self._connected = False
        self._stopping = threading.Event()
        self._started = False
        self._refused_streak = 0  # refused SUBACKs since the last granted one
        self._resubscribe: threading.Timer | None = None
        try:
            client = BufferedClient(
                CallbackAPIVersion.VERSION2,
                client_id=config.client_id,
                protocol=mqtt.MQTTv5,
                reconnect_on_failure=True,
            )
            client.manual_ack_set(True)
            set_login(client, config.credentials)
            lo, hi = config.reconnect_min_s, config.reconnect_max_s
            # paho annotates the delays as int, but only adds, doubles and compares them: a
            # sub-second float (--reconnect-max below 4 s) works and must not be rounded away
            client.reconnect_delay_set(lo, hi)  # type: ignore[arg-type]
        except (ValueError, TypeError, CredentialsError) as exc:
            raise ConnectError(f"cannot create the MQTT client: {exc}") from exc
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def generation(self) -> int:
        return self._generation

    def start(self) -> None:
        """Connect in the background (retrying while the broker is down) and start the thread."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: unannotated
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        if self.announcer is not None:  # the broker says "offline" for us if the link dies
            self._client.will_set(self.config.status_topic, self.announcer.offline(self.clock.now()),
                                  qos=1, retain=True)
        try:
            self._client.connect_async(
                self.config.host, self.config.port, keepalive=self.config.keepalive_s,
                clean_start=False, properties=props,
            )
        except (ValueError, OSError) as exc:
            where = f"{self.config.host}:{self.config.port}"
            raise ConnectError(f"cannot connect to {where}: {exc}") from exc
        self._client.loop_start()
        self._started = True

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Flush, disconnect and join the thread.

        PUBACKs queued just before disconnect() do not always reach the broker: paho closes
        the socket right after writing DISCONNECT, and under CPU load the broker then
        redelivered the acknowledged messages to the next session (5 of 120 stops measured
        here lost PUBACKs; a duplicate each, not a loss). So stop() first publishes one QoS 1
        message on SYNC_TOPIC and waits for its PUBACK (0 of 120 stops lost any): the broker
        handles a connection's packets in order, so it has processed every earlier PUBACK,
        and paho sends its queued QoS 1 acks in order, so those went out before it too.
        """
        self._stopping.set()
        if self._resubscribe is not None:
            self._resubscribe.cancel()
        if not self._started:
            return
        if self._connected:
            if self.announcer is not None:  # a clean DISCONNECT discards the Last Will
                publish_offline(self._client, self.config.status_topic, self.announcer, self.clock)
            self.stats.flushed_on_stop = self._flush(flush_timeout_s)
        self._client.disconnect()
        self._client.loop_stop()
        self._started = False
        with self._lock:
            self._connected = False
            self._generation += 1
        self.ready.clear()

    def _flush(self, timeout_s: float) -> bool:
        return flush(self._client, self.config.client_id, timeout_s)

    # ---- to the broker ---------------------------------------------------------------------

    def ack_broker(self, deliveries: Iterable[InboundMessage]) -> int:
        """PUBACK every QoS 1 delivery of the current connection; returns how many were sent.

        Call only after the transaction holding them has committed. Deliveries from an earlier
        connection are skipped: their ids now name other messages, and the broker redelivers.
        """
        mids: list[int] = []
        with self._lock:
            for d in deliveries:
                if d.qos == 0:
                    continue
                if d.generation != self._generation or not self._connected:
                    self.stats.stale_acks_skipped += 1
                    continue
                mids.append(d.mid)
            self._client.ack_many(mids)  # one packet write and one wake-up for the batch
        self.stats.broker_acks += len(mids)
        return len(mids)

    def publish_acks(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """Publish end-to-end acks at QoS 1 (ingest.mqtt_shared.publish_acks)."""
        return publish_acks(self._client, messages, self.stats)

    # ---- paho callbacks (network thread): thin -----------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self.stats.connect_failures += 1
            self.log(f"connect refused by {self.config.host}:{self.config.port}: {reason_code}")
            return
        with self._lock:
            self._generation += 1
            self._connected = True
        self.stats.connects += 1
        self.stats.last_session_present = bool(flags.session_present)
        self.log(
            f"connected to {self.config.host}:{self.config.port} as {self.config.client_id}"
            f" (session_present={flags.session_present})"
        )
        rc, _mid = client.subscribe(self.config.subscription, qos=1)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self.log(f"subscribe to {self.config.subscription} failed to send: {mqtt.error_string(rc)}")
        if self.announcer is not None:
            self._announce(client, bool(flags.session_present))

    def _announce(self, client: mqtt.Client, session_present: bool) -> None:
        """The retained online status, after the SUBSCRIBE on the same connection (ingest/announce.py)."""
        if self.announcer is not None:
            announce_online(client, self.config.status_topic, self.announcer, session_present,
                            self.clock, self.log)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.stats.connect_failures += 1
        if self.stats.connect_failures in (1, 10) or self.stats.connect_failures % 100 == 0:
            self.log(f"cannot reach {self.config.host}:{self.config.port}"
                     f" ({self.stats.connect_failures} failed attempts); retrying")

    def _on_disconnect(self, client: mqtt.Client, userdata: object,
                       flags: mqtt.DisconnectFlags, reason_code: ReasonCode,
                       properties: Properties | None) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
            self._generation += 1
        self.ready.clear()
        if was:
            self.stats.disconnects += 1
            if not self._stopping.is_set():
                self.log(f"disconnected ({reason_code}); reconnecting")

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            # Mosquitto grants every SUBSCRIBE, but a broker may refuse one for a while (a NATS
            # node answers 0x80 when it cannot create the subscription's consumer in time):
            # without it nothing arrives on this connection, so it is sent again, after a wait
            # that doubles with each refusal in a row (reconnect_min_s up to reconnect_max_s)
            self.stats.subscribe_refusals += 1
            cfg = self.config
            delay = min(cfg.reconnect_max_s, cfg.reconnect_min_s * 2.0 ** min(self._refused_streak, 16))
            self._refused_streak += 1
            self.log(f"subscription to {cfg.subscription} refused: {failed[0]}; again in {delay:g} s")
            self._subscribe_later(client, delay)
            return
        self._refused_streak = 0
        granted = [rc.value for rc in reason_codes]
        self.log(f"subscribed to {self.config.subscription} (granted QoS {granted})")
        self.ready.set()

    def _subscribe_later(self, client: mqtt.Client, delay: float) -> None:
        """SUBSCRIBE again after `delay` s on the same connection (a timer thread of this
        adapter; paho's subscribe() is thread-safe). A new connection subscribes by itself."""
        generation = self._generation

        def again() -> None:
            if self._stopping.is_set() or not self._connected or self._generation != generation:
                return
            client.subscribe(self.config.subscription, qos=1)

        timer = threading.Timer(delay, again)
        timer.daemon = True
        self._resubscribe = timer
        timer.start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            # paho keeps the raw topic bytes only in MQTTMessage._topic (its .topic decodes strictly)
            raw_topic = bytes(msg._topic)  # noqa: SLF001 -- the only access to the raw topic
            topic = raw_topic.decode("utf-8", "replace")
        message = InboundMessage(topic, bytes(msg.payload), msg.mid, msg.qos, self.clock.now(),
                                 self._generation)
        self.stats.received += 1
        try:
            self.queue.put_nowait(message)
            return
        except queue.Full:
            self.stats.blocked_puts += 1
        while not self._stopping.is_set():
            try:
                self.queue.put(message, timeout=0.1)
                return
            except queue.Full:
                continue
        self.stats.given_up_puts += 1  # never acknowledged: the broker redelivers it
