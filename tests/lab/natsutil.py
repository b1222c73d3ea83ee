"""MQTT 3.1.1 clients for tests against a NATS cluster (or Mosquitto): paho on its own loop
thread, recording CONNACKs, PUBACKs, messages and disconnects for the test thread to poll."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nats
import paho.mqtt.client as mqtt
from nats.js.api import ConsumerConfig, DiscardPolicy
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ecgcore.credentials import ClientCredentials, client_tls_context
from lab.stack.nats_monitor import MQTT_MSGS
from tests.conftest import wait_until

HOST = "127.0.0.1"
PAYLOAD_BYTES = 600


def payload(seq: int, size: int = PAYLOAD_BYTES) -> bytes:
    """A counted payload: the seq in its first 10 bytes, padded to `size`."""
    head = f"{seq:010d}".encode()
    return head + b"x" * (size - len(head))


def seq_of(data: bytes) -> int:
    return int(data[:10])


@dataclass(frozen=True)
class Got:
    topic: str
    payload: bytes
    retain: bool
    dup: bool


class Mq:
    """One client. `acked` holds the mids whose PUBACK arrived; `got` every message received."""

    def __init__(self, port: int, client_id: str, *, clean: bool = True, host: str = HOST,
                 protocol: int = mqtt.MQTTv311, will: tuple[str, bytes] | None = None,
                 inflight: int = 20, manual_ack: bool = False,
                 login: ClientCredentials | None = None) -> None:
        self.lock = threading.Lock()
        self.connacks: list[tuple[int, bool]] = []  # (reason code value, session present)
        self.acked: set[int] = set()
        self.got: list[Got] = []
        self.subacks: list[list[int]] = []
        self.disconnects = 0
        clean_arg = None if protocol == mqtt.MQTTv5 else clean
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_arg, protocol=protocol)
        self.client.max_inflight_messages_set(inflight)
        self.client.manual_ack_set(manual_ack)  # True: no PUBACK for what arrives (a stuck subscriber)
        self.client.reconnect_delay_set(1, 1)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        if login is not None:  # a secure cluster: a password, and with TLS its certificate
            self.client.username_pw_set(login.username, login.password)
            if login.tls is not None:
                self.client.tls_set_context(client_tls_context(login.tls))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, _c: mqtt.Client, _u: Any, flags: mqtt.ConnectFlags, rc: ReasonCode,
                    _p: Properties | None = None) -> None:
        with self.lock:
            self.connacks.append((rc.value, bool(flags.session_present)))

    def _on_disconnect(self, *_args: Any) -> None:
        with self.lock:
            self.disconnects += 1

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _rc: ReasonCode, _p: Properties) -> None:
        with self.lock:
            self.acked.add(mid)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append(Got(msg.topic, bytes(msg.payload), bool(msg.retain), bool(msg.dup)))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[ReasonCode],
                      _p: Properties) -> None:
        with self.lock:
            self.subacks.append([c.value for c in codes])

    # --- test side ---------------------------------------------------------------------

    def wait_connack(self, timeout: float = 30.0, n: int = 1) -> tuple[int, bool]:
        wait_until(lambda: len(self.connacks) >= n, timeout, what=f"CONNACK #{n}")
        return self.connacks[n - 1]

    def connected(self, timeout: float = 30.0) -> Mq:
        rc, _ = self.wait_connack(timeout)
        assert rc == 0, f"CONNACK {rc}"
        return self

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 30.0) -> list[int]:
        n = len(self.subacks)
        self.client.subscribe(topic, qos=qos)
        wait_until(lambda: len(self.subacks) > n, timeout, what=f"SUBACK for {topic}")
        return self.subacks[n]

    def publish(self, topic: str, data: bytes, qos: int = 1, retain: bool = False) -> int:
        return int(self.client.publish(topic, data, qos=qos, retain=retain).mid)

    def publish_seqs(self, topic: str, seqs: Iterable[int], qos: int = 1) -> dict[int, int]:
        """Publish payload(seq) for each seq; returns mid → seq."""
        return {self.publish(topic, payload(s), qos): s for s in seqs}

    def acked_count(self, mids: Iterable[int]) -> int:
        with self.lock:
            return sum(1 for m in mids if m in self.acked)

    def seqs(self, topic: str | None = None) -> list[int]:
        with self.lock:
            return [seq_of(g.payload) for g in self.got if topic is None or g.topic == topic]

    def close(self) -> None:
        """A clean DISCONNECT (no Last Will), then the loop thread ends."""
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self) -> None:
        """Lose the connection without DISCONNECT (the broker sends the Last Will)."""
        self.client.loop_stop()
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def forget_session(port: int, client_id: str) -> None:
    """Connect once with clean_session=True: the broker deletes the client's persistent session
    (and its consumers), so a test leaves no backlog behind."""
    Mq(port, client_id, clean=True).connected().close()


# --- nats-py: the JetStream API and NATS core, each call in its own event loop ------------------


def set_msgs_limits(client_port: int, max_msgs: int, discard: str, *, purge: bool = False) -> None:
    """Set $MQTT_msgs's max_msgs and discard policy ("old" or "new") through the JetStream API
    (-1 and "old" are what the server creates it with); purge: empty it first (a stream-wide
    limit counts every session's messages, a failed test's leftovers too)."""

    async def run() -> None:
        nc = await nats.connect(f"nats://{HOST}:{client_port}")
        try:
            js = nc.jetstream()
            if purge:
                await js.purge_stream(MQTT_MSGS)
            config = (await js.stream_info(MQTT_MSGS)).config
            config.max_msgs = max_msgs
            config.discard = DiscardPolicy.NEW if discard == "new" else DiscardPolicy.OLD
            await js.update_stream(config)
        finally:
            await nc.close()

    asyncio.run(run())


def stream_msgs(client_port: int) -> int:
    """How many messages $MQTT_msgs holds now (its state, as the stream leader reports it)."""

    async def run() -> int:
        nc = await nats.connect(f"nats://{HOST}:{client_port}")
        try:
            return int((await nc.jetstream().stream_info(MQTT_MSGS)).state.messages)
        finally:
            await nc.close()

    return asyncio.run(run())


def queue_group_split(client_ports: list[int], subject: str, publish: Any, expected: int,
                      timeout: float = 10.0) -> tuple[list[int], list[dict[str, str]], list[int]]:
    """One NATS-core queue subscriber per port (queue "ingest"); publish() is then called (from a
    worker thread: it may block); waits until `expected` distinct payloads arrived; returns how
    many messages each subscriber got (a re-sent PUBLISH arrives again: at most once per copy),
    the headers seen and the payloads' seqs."""

    async def run() -> tuple[list[int], list[dict[str, str]], list[int]]:
        counts = [0] * len(client_ports)
        headers: list[dict[str, str]] = []
        seqs: list[int] = []
        conns = [await nats.connect(f"nats://{HOST}:{p}") for p in client_ports]
        try:
            for i, nc in enumerate(conns):
                async def on_msg(msg: Any, i: int = i) -> None:
                    counts[i] += 1
                    headers.append(dict(msg.headers or {}))
                    seqs.append(seq_of(msg.data))
                await nc.subscribe(subject, queue="ingest", cb=on_msg)
                await nc.flush()
            await asyncio.to_thread(publish)
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout
            while len(set(seqs)) < expected and loop.time() < end:
                await asyncio.sleep(0.02)  # wait-ok: a poll of the counts until a deadline (`end`)
            return counts, headers, seqs
        finally:
            for nc in conns:
                await nc.close()

    return asyncio.run(run())


def pull_workers(client_ports: list[int], durable: str, filter_subject: str, publish: Any,
                 expected: int, timeout: float = 10.0) -> list[int]:
    """A durable JetStream pull consumer on $MQTT_msgs filtered to `filter_subject`; then
    publish() runs (in a worker thread) while nobody fetches; then one worker per port fetches
    and acks from the same consumer. Returns how many messages each worker took. The consumer is
    deleted afterwards."""

    async def run() -> list[int]:
        conns = [await nats.connect(f"nats://{HOST}:{p}") for p in client_ports]
        counts = [0] * len(conns)
        try:
            js0 = conns[0].jetstream()
            await js0.add_consumer(MQTT_MSGS, ConsumerConfig(durable_name=durable,
                                                             filter_subject=filter_subject))
            await asyncio.to_thread(publish)
            subs = [await nc.jetstream().pull_subscribe_bind(durable, MQTT_MSGS) for nc in conns]
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout
            while sum(counts) < expected and loop.time() < end:
                for i, sub in enumerate(subs):
                    try:
                        msgs = await sub.fetch(10, timeout=0.2)
                    except nats.errors.TimeoutError:
                        continue
                    for m in msgs:
                        await m.ack()
                    counts[i] += len(msgs)
            await js0.delete_consumer(MQTT_MSGS, durable)
            return counts
        finally:
            for nc in conns:
                await nc.close()

    return asyncio.run(run())
