"""Ingest's MQTT subscriber SUBSCRIBEs again when a SUBACK refuses the readings' subscription
(ingest/subscriber.py). Mosquitto 2.0.11 grants every SUBSCRIBE, so a scripted MQTT 5 broker
(framing only: CONNACK, PUBACK, SUBACK) plays one that refuses the first two."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from ecgcore.clock import ManualClock
from ingest.subscriber import Subscriber, SubscriberConfig
from tests.conftest import wait_until
from tests.scripted_mqtt import read_packet


class RefusingBroker:
    """MQTT 5: refuses the first `refusals` SUBSCRIBEs (0x87, not authorized), grants the rest."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.subacks: list[int] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while (packet := read_packet(conn)) is not None:
                    first, body = packet
                    kind = first >> 4
                    if kind == 1:  # CONNECT: CONNACK, no session, success, no properties
                        conn.sendall(bytes([0x20, 3, 0, 0, 0]))
                    elif kind == 3 and (first >> 1) & 3:  # PUBLISH at QoS 1: PUBACK its packet id
                        tl = int.from_bytes(body[:2], "big")
                        conn.sendall(bytes([0x40, 2]) + body[2 + tl:4 + tl])
                    elif kind == 8:  # SUBSCRIBE: packet id, properties, one filter here
                        code = 0x87 if len(self.subacks) < self.refusals else 0x01
                        self.subacks.append(code)
                        conn.sendall(bytes([0x90, 4]) + body[:2] + bytes([0, code]))
            except OSError:
                return

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def refusing() -> Iterator[RefusingBroker]:
    b = RefusingBroker(refusals=2)
    try:
        yield b
    finally:
        b.close()


def test_a_refused_subscription_is_sent_again_on_the_same_connection(refusing: RefusingBroker) -> None:
    lines: list[str] = []
    sub = Subscriber(SubscriberConfig("127.0.0.1", refusing.port, "ingest-a",
                                      reconnect_min_s=0.1, reconnect_max_s=0.4),
                     ManualClock(), log=lines.append)
    sub.start()
    try:
        wait_until(sub.ready.is_set, 20, what="a granted subscription")
        assert refusing.subacks == [0x87, 0x87, 0x01]
        assert sub.stats.subscribe_refusals == 2 and refusing.connections == 1
        assert [line.split(": ", 1)[-1] for line in lines if "refused" in line][:2] == [
            "Not authorized; again in 0.1 s", "Not authorized; again in 0.2 s"], lines
    finally:
        sub.stop(flush_timeout_s=2)


def test_without_a_grant_it_keeps_asking_and_never_says_ready() -> None:
    broker = RefusingBroker(refusals=1_000)
    sub = Subscriber(SubscriberConfig("127.0.0.1", broker.port, "ingest-never",
                                      reconnect_min_s=0.05, reconnect_max_s=0.2), ManualClock())
    sub.start()
    try:
        wait_until(lambda: sub.stats.subscribe_refusals >= 4, 20, what="four refusals")
        assert not sub.ready.is_set() and broker.connections == 1
    finally:
        sub.stop(flush_timeout_s=2)
        broker.close()
