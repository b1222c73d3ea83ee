"""ingest.paho_client.BufferedClient against a real Mosquitto: reads in large gulps deliver
every message whole and in order (sizes on both sides of the read chunk), with far fewer
recv() calls than messages; ack_many's one-packet PUBACKs are PUBACKs to the broker (what was
acknowledged is not redelivered, what was not is)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.paho_client import READ_CHUNK, BufferedClient
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from tests.ingest.conftest import Publisher

pytestmark = pytest.mark.broker


class Receiver:
    """A persistent-session BufferedClient with manual PUBACKs, recording (mid, payload)."""

    def __init__(self, broker: RunningBroker, client_id: str, topic: str) -> None:
        self.got: list[tuple[int, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.topic = topic
        self.c = BufferedClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                protocol=mqtt.MQTTv5)
        self.c.manual_ack_set(True)
        self.c.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        self.c.on_subscribe = lambda *_: self.subscribed.set()
        self.c.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: unannotated
        props.SessionExpiryInterval = 600
        props.ReceiveMaximum = 1000
        self.c.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.c.loop_start()
        wait_until(self.subscribed.is_set, 10, what=f"{client_id} SUBACK")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.mid, bytes(msg.payload)))

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [p for _, p in self.got]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def receivers() -> Iterator[Callable[[RunningBroker, str, str], Receiver]]:
    made: list[Receiver] = []

    def make(broker: RunningBroker, cid: str, topic: str) -> Receiver:
        made.append(Receiver(broker, cid, topic))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _messages(n: int) -> list[bytes]:
    sizes = [550, 3, 20_000, READ_CHUNK + 777, 130]  # small, tiny, large, past one read chunk
    return [f"{i:06d}|".encode() + b"x" * sizes[i % len(sizes)] for i in range(n)]


def test_gulped_reads_deliver_every_message_whole_and_in_order(
        broker_factory: Callable[..., RunningBroker], unique: Callable[[str], str],
        receivers: Callable[[RunningBroker, str, str], Receiver]) -> None:
    broker = broker_factory(max_queued=5000, message_size_limit=4 * READ_CHUNK)
    topic, cid = f"heartcheck/{unique('dev')}/ecg", unique("ingest")
    r = receivers(broker, cid, topic)
    r.close()  # the backlog queues at the broker, so the reads find many packets at once
    sent = _messages(40) + [f"{i:06d}|small".encode() for i in range(40, 900)]  # < Receive Maximum
    pub = Publisher(broker.host, broker.port, unique("pub"))
    for p in sent:
        pub.publish(topic, p)
    pub.wait_all()
    pub.close()
    r2 = receivers(broker, cid, topic)  # the same session
    wait_until(lambda: len(r2.payloads()) >= len(sent), 30, what=f"{len(sent)} messages")
    assert r2.payloads() == sent
    assert r2.c.reads < len(sent) // 5, f"{r2.c.reads} recv() calls for {len(sent)} messages"


def test_ack_many_acknowledges_exactly_the_ids_given(
        broker: RunningBroker, unique: Callable[[str], str],
        receivers: Callable[[RunningBroker, str, str], Receiver]) -> None:
    topic, cid = f"heartcheck/{unique('dev')}/ecg", unique("ingest")
    r = receivers(broker, cid, topic)
    pub = Publisher(broker.host, broker.port, unique("pub"))
    for i in range(300):
        pub.publish(topic, f"m{i}".encode())
    pub.wait_all()
    wait_until(lambda: len(r.payloads()) >= 300, 20, what="300 messages")
    with r.lock:
        by_payload = {p: mid for mid, p in r.got}
    acked = [f"m{i}".encode() for i in range(300) if i % 3 != 0]
    r.c.ack_many([by_payload[p] for p in acked])
    r.c.ack_many([])  # nothing to send is no packet at all
    pub.publish(topic, b"sentinel-1")  # ordered after the PUBACKs on the broker's side
    wait_until(lambda: b"sentinel-1" in r.payloads(), 10, what="sentinel-1")
    r.c.ack_many([next(mid for mid, p in r.got if p == b"sentinel-1")])
    r.close()
    again = receivers(broker, cid, topic)
    pub.publish(topic, b"sentinel-2")
    pub.wait_all()
    expected = {f"m{i}".encode() for i in range(300) if i % 3 == 0}
    wait_until(lambda: b"sentinel-2" in again.payloads() and expected <= set(again.payloads()), 20,
               what="the unacknowledged 100 redelivered, then sentinel-2")
    pub.close()
    assert set(again.payloads()) == expected | {b"sentinel-2"}
