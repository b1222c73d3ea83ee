"""A refused acks subscription ends the device's connection, and the next one subscribes again.

A NATS node answers SUBACK 0x80 when it cannot create the session's JetStream consumer in time
(seen under load in full runs); Mosquitto 2.0.11 grants every SUBSCRIBE, so a scripted broker
(MQTT 3.1.1 framing only: CONNACK, PUBACK, SUBACK) plays the refusing one here.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from devices.mqtt_adapter import JitterBackoff, MqttHub
from ecgcore.clock import ManualClock
from tests.conftest import wait_until
from tests.scripted_mqtt import read_packet


class ScriptedBroker:
    """Refuses every SUBSCRIBE on the first `refusals` connections (or, `silent`, never answers
    it), grants it afterwards."""

    def __init__(self, refusals: int, silent: bool = False) -> None:
        self.refusals = refusals
        self.silent = silent
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.subacks: list[int] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                refuse = self.connections <= self.refusals
            threading.Thread(target=self._serve, args=(conn, refuse), daemon=True).start()

    def _serve(self, conn: socket.socket, refuse: bool) -> None:
        with conn:
            try:
                while (packet := read_packet(conn)) is not None:
                    kind, body = packet[0] >> 4, packet[1]
                    if kind == 1:  # CONNECT
                        conn.sendall(bytes([0x20, 2, 0, 0]))
                    elif kind == 3 and body:  # PUBLISH (the retained status, QoS 1): PUBACK
                        topic_len = int.from_bytes(body[:2], "big")
                        conn.sendall(bytes([0x40, 2]) + body[2 + topic_len:4 + topic_len])
                    elif kind == 8:  # SUBSCRIBE: packet id, then (topic, qos) pairs
                        n, i = 0, 2
                        while i < len(body):
                            i += 2 + int.from_bytes(body[i:i + 2], "big") + 1
                            n += 1
                        code = 0x80 if refuse else 0x01
                        with self.lock:
                            self.subacks.append(code)
                        if refuse and self.silent:
                            continue
                        conn.sendall(bytes([0x90, 2 + n]) + body[:2] + bytes([code] * n))
            except OSError:
                return

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def refusing() -> Iterator[ScriptedBroker]:
    b = ScriptedBroker(refusals=3)
    try:
        yield b
    finally:
        b.close()


def test_a_refused_ack_subscription_reconnects_and_subscribes_again(refusing: ScriptedBroker) -> None:
    hub = MqttHub("127.0.0.1", refusing.port, ManualClock(), np.random.default_rng(0),
                  subscribe_acks=True, mqtt311=True, backoff=JitterBackoff(base=0.05, cap=0.2))
    link = hub.add("hc-0000", boot_epoch=1)
    granted: list[int] = []

    def step() -> bool:
        hub.service()
        hub.poll(0.02)
        hub.drain()
        granted[:] = [c for c in refusing.subacks if c == 0x01]
        return bool(granted) and link.online and link.subscribe_streak == 0  # reset by the grant

    try:
        wait_until(step, 20, what="a granted subscription after three refused ones")
        assert link.subscribe_refused == 3 and link.connects == 4, (link.subscribe_refused, link.connects)
        assert refusing.subacks == [0x80, 0x80, 0x80, 0x01]
    finally:
        hub.close()


def test_refusals_in_a_row_back_off_further(refusing: ScriptedBroker) -> None:
    hub = MqttHub("127.0.0.1", refusing.port, ManualClock(), np.random.default_rng(0),
                  subscribe_acks=True, mqtt311=True, backoff=JitterBackoff(base=0.05, cap=10.0))
    link = hub.add("hc-0000", boot_epoch=1)
    delays: list[float] = []

    def step() -> bool:
        hub.service()
        hub.poll(0.02)
        before = link.subscribe_refused
        hub.drain()
        if link.subscribe_refused > before:
            delays.append(link.next_attempt - time.monotonic())  # the hub's real clock
        return link.subscribe_refused >= 3

    try:
        wait_until(step, 20, what="three refused subscriptions")
        assert "SUBACK refused" in link.last_error
        # attempt k waits between half and all of 0.05 * 2**k: the streak drives the backoff
        assert [0.025 * 2**k - 0.01 <= d <= 0.05 * 2**k for k, d in enumerate(delays)] == [True] * 3, delays
    finally:
        hub.close()


def test_a_subscribe_never_answered_counts_as_refused() -> None:
    silent = ScriptedBroker(refusals=1, silent=True)
    hub = MqttHub("127.0.0.1", silent.port, ManualClock(), np.random.default_rng(0),
                  subscribe_acks=True, mqtt311=True, backoff=JitterBackoff(base=0.05, cap=0.2),
                  subscribe_timeout=0.5)
    link = hub.add("hc-0000", boot_epoch=1)

    def step() -> bool:
        hub.service()
        hub.poll(0.02)
        hub.drain()
        return link.online and link.subscribe_sent is None and link.subscribe_refused == 1

    try:
        wait_until(step, 20, what="a second connection whose SUBSCRIBE is answered")
        assert link.connects == 2 and silent.subacks == [0x80, 0x01], (link.connects, silent.subacks)
    finally:
        hub.close()
        silent.close()
