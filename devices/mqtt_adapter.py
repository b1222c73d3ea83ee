"""Every device's MQTT connection, driven from ONE thread: the only paho import of devices/.

paho's own loops (`loop_start`, `loop`, `loop_forever`) give each client a socketpair and
use `select()`, which fails for file descriptors >= 1024: about 340 clients per process
(see ../shared/FACTS.md). Here one `selectors.DefaultSelector` (epoll on Linux) watches
every client's socket, registered through paho's socket callbacks, and the fleet's loop
calls `loop_read()` / `loop_write()` when a socket is ready and `loop_misc()` about once a
(wall) second per client for the keepalive. One socket per client; nothing else.

Threading rule: paho's MQTT callbacks (`on_connect`, `on_disconnect`, `on_publish`,
`on_message`) only append a tuple to `MqttHub.events`; the socket callbacks only update
the selector's registrations. `MqttHub.drain()`, called by the loop, turns the raw tuples
into link state changes and `LinkEvent`s for the devices.

Each connection attempt uses a fresh paho Client (MQTT 5), so nothing of a previous
connection (message ids, paho's in-RAM queue) survives a disconnect in the process: the
outbox and the device's own bookkeeping are the only memory. Connection generations
(`MqttLink.gen`) make late events of an abandoned client harmless. Fire-and-forget and
broker-ack connect with clean start. End-to-end keeps a broker session (clean start off,
Session Expiry `session_expiry` s), so the acks published while a device is away wait for it,
and the CONNACK's session_present (passed on in the "connected" event) tells the device
whether the broker still knew it: if not, the broker lost its state (a restart without
persistence, an expired session) and the device re-sends what it had in flight.

On connect a device publishes a retained "online" status on heartcheck/<id>/status (its
Last Will, retained QoS 1, says "offline") and, in end-to-end mode, subscribes at QoS 1 to
heartcheck/<id>/ack and to the ingest service's retained status (wire.INGEST_STATUS_TOPIC).
A SUBACK that refuses it, or none within `subscribe_timeout` real seconds, ends the connection
like a lost one (a NATS node answers 0x80 or drops the SUBSCRIBE while the cluster fails
over, docs/nats.md fact 14; without the subscription no ack would ever arrive on it), and the
next connection subscribes again; refusals in a row lengthen the backoff.
A failed or lost connection is retried after an exponential
backoff with equal jitter (half fixed, half random from the injected generator), reset by
a successful CONNACK; or, with `FixedRetry` (`--reconnect-backoff none`), every second in
lockstep, which is what makes a thundering herd.

Two clocks. The injected `Clock` (simulated time) only stamps things: status messages and
`MqttLink.since`. Every network timer runs on `real_clock` (default `time.monotonic`), REAL
seconds whatever `--speed` is and even while a shared lab clock stands still before its
anchor (ecgcore.clock.ScaledClock): the backoff's delays, `loop_misc()` once a real
second (paho's keepalive PINGREQs depend on it), and paho's own keepalive and connect
timeout. `--speed` compresses the recording, not the network.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import heapq
import selectors
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ecgcore.clock import Clock
from ecgcore.credentials import ClientCredentials, CredentialsError, client_tls_context
from wire import ack_topic, encode_status, status_topic
from wire.topics import INGEST_STATUS_FILTER

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike
    from paho.mqtt.client import SocketLike  # paho defines it for type checkers only

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class LinkState(enum.Enum):
    IDLE = "idle"  # no client; waiting for next_attempt
    CONNECTING = "connecting"  # CONNECT sent, no CONNACK yet
    CONNECTED = "connected"
    CLOSED = "closed"  # the hub is shutting down


@dataclass(frozen=True)
class LinkEvent:
    """What the devices need to know: connected, disconnected, puback or message."""

    kind: str
    index: int
    mid: int = 0
    ok: bool = True
    session_present: bool = False  # "connected": the broker still had this device's session
    topic: str = ""
    payload: bytes = b""


@dataclass(frozen=True)
class JitterBackoff:
    """Exponential backoff with equal jitter: d = min(cap, base * 2**n); wait d/2 + U(0, d/2)."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, rng: np.random.Generator) -> float:
        d = min(self.cap, self.base * 2.0 ** min(attempt, 32))
        return d / 2 + float(rng.uniform(0.0, d / 2))


@dataclass(frozen=True)
class FixedRetry:
    """No backoff: retry every `interval` seconds, no jitter. Every device that lost its link
    at the same moment comes back at the same moment (the thundering herd)."""

    interval: float = 1.0

    def delay(self, attempt: int, rng: np.random.Generator) -> float:
        return self.interval


@dataclass(eq=False)
class MqttLink:
    """One device's connection. Implements the device's Publisher protocol."""

    index: int
    device_id: str
    boot_epoch: int
    state: LinkState = LinkState.IDLE
    client: mqtt.Client | None = None
    gen: int = 0
    attempt: int = 0  # consecutive failures since the last successful CONNACK
    next_attempt: float = 0.0  # REAL monotonic time (real_clock) of the next attempt
    since: float = 0.0  # simulated wall time of the last online/offline change
    connects: int = 0
    refused: int = 0  # connection attempts that failed before or at CONNACK
    subscribe_streak: int = 0  # refused SUBACKs since the last granted one
    subscribe_sent: float | None = None  # REAL time the acks' SUBSCRIBE went out, until its SUBACK
    subscribe_refused: int = 0  # SUBACKs that refused the acks' subscription (each ends the connection)
    last_error: str = ""

    @property
    def online(self) -> bool:
        return self.state is LinkState.CONNECTED

    @property
    def reconnects(self) -> int:
        """Successful connections after the first one of this boot."""
        return max(0, self.connects - 1)

    def publish(self, topic: str, payload: bytes, qos: int) -> int | None:
        if self.state is not LinkState.CONNECTED or self.client is None:
            return None
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)


MAX_TLS_READS = 10_000  # packets read from one TLS socket's buffer per wake-up, at most


class MqttHub:
    """All links of a fleet, one selector, one thread. See the module docstring."""

    def __init__(self, host: str, port: int, clock: Clock, rng: np.random.Generator, *,
                 keepalive: int = 10, backoff: JitterBackoff | FixedRetry | None = None, inflight: int = 20,
                 subscribe_acks: bool = False, connects_per_pass: int = 100,
                 connect_timeout: float = 5.0, session_expiry: int = 86_400,
                 real_clock: Callable[[], float] = time.monotonic,
                 credentials: Callable[[str], ClientCredentials | None] = lambda _id: None,
                 mqtt311: bool = False, subscribe_timeout: float = 30.0) -> None:
        self.host = host
        # real seconds a connected link waits for the acks' SUBACK before it reconnects
        self.subscribe_timeout = subscribe_timeout
        # MQTT 3.1.1 instead of 5 (a NATS cluster speaks only 3.1.1): a kept session is
        # clean_session=False, and it never expires
        self.mqtt311 = mqtt311
        self.credentials = credentials  # each device's login and certificate; None: anonymous
        self.port = port
        self.keepalive = keepalive
        self.inflight = inflight
        self.subscribe_acks = subscribe_acks
        self.session_expiry = session_expiry
        self.connects_per_pass = connects_per_pass
        self.connect_timeout = connect_timeout
        self.backoff = backoff or JitterBackoff()
        self.links: list[MqttLink] = []
        self.events: collections.deque[tuple[Any, ...]] = collections.deque()
        self.selector = selectors.DefaultSelector()
        self._clock = clock
        self._real = real_clock
        self._rng = rng
        self._due: list[tuple[float, int, int]] = []  # (next_attempt, index, gen) heap
        self._next_misc = real_clock()
        self._closing = False

    # --- links --------------------------------------------------------------------------

    def add(self, device_id: str, boot_epoch: int) -> MqttLink:
        """A new link, due to connect at once."""
        link = MqttLink(index=len(self.links), device_id=device_id, boot_epoch=boot_epoch,
                    next_attempt=self._real(), since=self._clock.now())
        self.links.append(link)
        heapq.heappush(self._due, (link.next_attempt, link.index, link.gen))
        return link

    @property
    def online(self) -> int:
        return sum(1 for link in self.links if link.state is LinkState.CONNECTED)

    def next_deadline(self) -> float:
        """Real monotonic time (`real_clock`) of the next thing `service()` has to do."""
        t = self._next_misc
        if self._due:
            t = min(t, self._due[0][0])
        return t

    # --- paho callbacks: append only ----------------------------------------------------

    def _on_connect(self, _c: mqtt.Client, ud: tuple[MqttLink, int], flags: Any,
                    reason: Any, _props: Any) -> None:
        self.events.append(("connect", ud[0], ud[1], not reason.is_failure, str(reason),
                            bool(getattr(flags, "session_present", False))))

    def _on_disconnect(self, _c: mqtt.Client, ud: tuple[MqttLink, int], _flags: Any,
                       reason: Any, _props: Any) -> None:
        self.events.append(("disconnect", ud[0], ud[1], str(reason)))

    def _on_publish(self, _c: mqtt.Client, ud: tuple[MqttLink, int], mid: int, reason: Any,
                    _props: Any) -> None:
        self.events.append(("puback", ud[0], ud[1], mid, not reason.is_failure))

    def _on_message(self, _c: mqtt.Client, ud: tuple[MqttLink, int], msg: mqtt.MQTTMessage) -> None:
        self.events.append(("message", ud[0], ud[1], msg.topic, bytes(msg.payload)))

    def _on_subscribe(self, _c: mqtt.Client, ud: tuple[MqttLink, int], _mid: int, codes: list[Any],
                      _props: Any) -> None:
        refused = [str(c) for c in codes if c.is_failure]
        self.events.append(("suback", ud[0], ud[1], refused[0] if refused else ""))

    # --- socket callbacks: selector registrations only ----------------------------------

    def _on_socket_open(self, _c: mqtt.Client, ud: Any, sock: SocketLike) -> None:
        try:
            self.selector.register(sock, _READ, ud)
        except KeyError:  # the fd number of a socket closed behind our back: take it over
            self.selector.unregister(sock)
            self.selector.register(sock, _READ, ud)

    def _on_socket_close(self, _c: mqtt.Client, _ud: Any, sock: SocketLike) -> None:
        self._unregister(sock)

    def _on_register_write(self, _c: mqtt.Client, ud: Any, sock: SocketLike) -> None:
        with contextlib.suppress(KeyError, ValueError):  # already closed
            self.selector.modify(sock, _READ | _WRITE, ud)

    def _on_unregister_write(self, _c: mqtt.Client, ud: Any, sock: SocketLike) -> None:
        with contextlib.suppress(KeyError, ValueError):  # already closed
            self.selector.modify(sock, _READ, ud)

    def _unregister(self, sock: FileDescriptorLike) -> None:
        with contextlib.suppress(KeyError, ValueError):  # never registered, or already gone
            self.selector.unregister(sock)

    # --- the loop's work ----------------------------------------------------------------

    def poll(self, timeout: float) -> int:
        """Wait up to `timeout` real seconds for socket readiness, then read and write."""
        ready = self.selector.select(timeout)
        for key, mask in ready:
            link, gen = key.data
            client = link.client
            if client is None or link.gen != gen:
                self._unregister(key.fileobj)  # never spin on it
                continue
            if mask & _READ:
                self._read(link, gen, client)
            if mask & _WRITE and link.client is client and link.gen == gen:
                client.loop_write()
        return len(ready)

    def _read(self, link: MqttLink, gen: int, client: mqtt.Client) -> None:
        """paho's loop_read takes one packet when little is in flight. Over TLS the rest of what
        arrived may already sit decrypted inside the SSL object, where the selector cannot see
        it (the socket is no longer readable): read on while it holds bytes, or a CONNACK, an
        ack or a PUBACK waits for the next unrelated wake-up (measured: p99 latency 1.2 s at
        1,000 devices, 27 s at 3,000, against 0.13 s and 0.7 s in plaintext)."""
        client.loop_read()
        for _ in range(MAX_TLS_READS):
            sock = client.socket()
            if not (isinstance(sock, ssl.SSLSocket) and link.client is client and link.gen == gen
                    and sock.pending() > 0):
                return
            client.loop_read()

    def service(self) -> None:
        """Start due connection attempts; run paho's keepalive about once a wall second."""
        if self._closing:
            return
        now = self._real()
        started = 0
        while self._due and self._due[0][0] <= now and started < self.connects_per_pass:
            _, index, gen = heapq.heappop(self._due)
            link = self.links[index]
            if link.gen != gen or link.state is not LinkState.IDLE:
                continue  # a stale entry
            self._connect(link)
            started += 1
        if now >= self._next_misc:
            self._next_misc = now + 1.0
            for link in self.links:
                if link.client is not None:
                    link.client.loop_misc()
                if (link.subscribe_sent is not None and link.state is LinkState.CONNECTED
                        and now - link.subscribe_sent > self.subscribe_timeout):
                    # a SUBSCRIBE the server lost (docs/nats.md fact 14): as good as refused
                    link.subscribe_sent = None
                    self.events.append(("suback", link, link.gen,
                                        f"no SUBACK in {self.subscribe_timeout:g} s"))

    def _connect(self, link: MqttLink) -> None:
        link.gen += 1
        ud = (link, link.gen)
        if self.mqtt311:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=link.device_id,
                                 protocol=MQTTProtocolVersion.MQTTv311, userdata=ud,
                                 clean_session=not self.subscribe_acks)
        else:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=link.device_id,
                                 protocol=MQTTProtocolVersion.MQTTv5, userdata=ud)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.max_inflight_messages_set(self.inflight)
        client.connect_timeout = self.connect_timeout
        client.will_set(status_topic(link.device_id),
                        encode_status(link.device_id, "offline", link.boot_epoch, self._clock.now()),
                        qos=1, retain=True)
        link.client = client
        link.state = LinkState.CONNECTING
        try:
            creds = self.credentials(link.device_id)
            if creds is not None:
                client.username_pw_set(creds.username, creds.password)
                if creds.tls is not None:  # its own certificate; the handshake is in connect()
                    client.tls_set_context(client_tls_context(creds.tls))
            if self.mqtt311:  # the session's fate was set with clean_session above
                client.connect(self.host, self.port, keepalive=self.keepalive)
            elif self.subscribe_acks:  # end-to-end: a broker session that outlives the connection
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: unannotated
                props.SessionExpiryInterval = self.session_expiry
                client.connect(self.host, self.port, keepalive=self.keepalive, clean_start=False,
                               properties=props)
            else:
                client.connect(self.host, self.port, keepalive=self.keepalive, clean_start=True)
        except (OSError, ValueError, CredentialsError) as exc:  # refused, timeouts, DNS, TLS
            link.last_error = f"{type(exc).__name__}: {exc}"
            self._lost(link)

    def _abandon(self, link: MqttLink) -> None:
        """Drop the link's client without paho's help: its socket is closed here."""
        client, link.client = link.client, None
        link.gen += 1
        if client is None:
            return
        for name in ("on_connect", "on_disconnect", "on_publish", "on_message", "on_subscribe",
                     "on_socket_open", "on_socket_close", "on_socket_register_write",
                     "on_socket_unregister_write"):
            setattr(client, name, None)
        sock = client.socket()
        if sock is not None:
            self._unregister(sock)
            sock.close()

    def _lost(self, link: MqttLink) -> None:
        """A connection attempt failed or a connection ended: schedule the next attempt."""
        if link.state is not LinkState.CONNECTED:
            link.refused += 1
        self._abandon(link)
        if self._closing:
            link.state = LinkState.CLOSED
            return
        link.state = LinkState.IDLE
        link.next_attempt = self._real() + self.backoff.delay(link.attempt, self._rng)
        link.attempt += 1
        heapq.heappush(self._due, (link.next_attempt, link.index, link.gen))

    def drain(self) -> list[LinkEvent]:
        """Apply the callbacks' raw events to the links; return what the devices must see."""
        out: list[LinkEvent] = []
        while self.events:
            kind, link, gen, *args = self.events.popleft()
            if gen != link.gen:
                continue  # from a client that was already abandoned
            if kind == "connect":
                ok, reason, session_present = args
                if ok:
                    self._connected(link)
                    out.append(LinkEvent("connected", link.index, session_present=session_present))
                else:
                    link.last_error = f"CONNACK {reason}"  # the broker closes; a disconnect follows
            elif kind == "disconnect":
                was_online = link.state is LinkState.CONNECTED
                if was_online or not link.last_error:
                    link.last_error = f"disconnect: {args[0]}"
                self._lost(link)
                if was_online:
                    link.since = self._clock.now()
                    out.append(LinkEvent("disconnected", link.index))
            elif kind == "puback":
                out.append(LinkEvent("puback", link.index, mid=args[0], ok=args[1]))
            elif kind == "suback":
                link.subscribe_sent = None
                if not (args[0] and link.state is LinkState.CONNECTED):  # granted (or the link is gone)
                    link.subscribe_streak = 0
                    continue
                # The acks' subscription refused (a NATS node that could not create the session's
                # JetStream consumer in time answers 0x80 under load; an ACL can too): without it
                # no end-to-end ack arrives on this connection, so end it and let the backoff
                # bring the next one, which subscribes again. Consecutive refusals back off further.
                link.subscribe_refused += 1
                link.last_error = f"SUBACK refused: {args[0]}"
                link.attempt = link.subscribe_streak
                link.subscribe_streak += 1
                self._lost(link)
                link.since = self._clock.now()
                out.append(LinkEvent("disconnected", link.index))
            elif kind == "message":
                out.append(LinkEvent("message", link.index, topic=args[0], payload=args[1]))
        return out

    def _connected(self, link: MqttLink) -> None:
        client = link.client
        if client is None:  # cannot happen: abandoning a client moves link.gen past its events
            raise RuntimeError(f"{link.device_id}: a CONNACK for a link without a client")
        link.state = LinkState.CONNECTED
        link.attempt = 0
        link.connects += 1
        link.since = self._clock.now()
        link.last_error = ""
        client.publish(status_topic(link.device_id),
                       encode_status(link.device_id, "online", link.boot_epoch, link.since),
                       qos=1, retain=True)
        if self.subscribe_acks:
            client.subscribe([(ack_topic(link.device_id), 1), (INGEST_STATUS_FILTER, 1)])
            link.subscribe_sent = self._real()

    # --- shutdown -----------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Publish a retained "offline" status on every live link and disconnect it cleanly
        (a clean DISCONNECT discards the Last Will, so the status is sent explicitly).

        Links that are not connected are dropped at once. Call `poll()`/`drain()` until
        `open_sockets()` is 0 (or a deadline passes), then `close()`.
        """
        self._closing = True
        now = self._clock.now()
        for link in self.links:
            client = link.client
            if link.state is LinkState.CONNECTED and client is not None:
                # QoS 0: a QoS 1 publish could wait behind 20 readings in flight, and the
                # DISCONNECT right after it would leave it unsent. TCP keeps the order, so
                # the broker stores this retained status before it sees the DISCONNECT.
                client.publish(status_topic(link.device_id),
                               encode_status(link.device_id, "offline", link.boot_epoch, now),
                               qos=0, retain=True)
                client.disconnect()
            else:
                self._abandon(link)
                link.state = LinkState.CLOSED

    def open_sockets(self) -> int:
        return len(self.selector.get_map())

    def close(self) -> None:
        """Drop every client that is still open and close the selector."""
        self._closing = True
        for link in self.links:
            was_online = link.state is LinkState.CONNECTED
            self._abandon(link)
            link.state = LinkState.CLOSED
            if was_online:
                link.since = self._clock.now()
        self.selector.close()
