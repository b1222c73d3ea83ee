"""Subscriber against a real Mosquitto: PUBACK only when asked, redelivery, Receive Maximum,
stale message ids after a reconnect, and backpressure on a full queue."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator

import pytest

from ecgcore.clock import SystemClock
from ingest.errors import ConfigError
from ingest.subscriber import InboundMessage, Subscriber, SubscriberConfig
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from tests.ingest.conftest import Publisher

pytestmark = pytest.mark.broker


@pytest.fixture
def subscribers() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(broker: RunningBroker, client_id: str, **kw: object) -> Subscriber:
        s = Subscriber(SubscriberConfig(broker.host, broker.port, client_id, **kw), SystemClock())  # type: ignore[arg-type]
        s.start()
        made.append(s)
        wait_until(s.ready.is_set, 10, what=f"{client_id} SUBACK")
        return s

    yield make
    for s in made:
        s.stop()


def drain(q: queue.Queue[InboundMessage], n: int) -> list[InboundMessage]:
    got: list[InboundMessage] = []
    wait_until(lambda: q.qsize() >= n, 20, what=f"{n} deliveries")
    while True:
        try:
            got.append(q.get_nowait())
        except queue.Empty:
            return got


def test_unacked_messages_are_redelivered_and_acked_ones_are_not(
        broker: RunningBroker, unique: Callable[[str], str],
        subscribers: Callable[..., Subscriber]) -> None:
    cid, dev = unique("ingest"), unique("dev")
    topic = f"heartcheck/{dev}/ecg"
    pub = Publisher(broker.host, broker.port, unique("pub"))
    try:
        a = subscribers(broker, cid)
        assert a.stats.last_session_present is False
        payloads = [f"m{i}".encode() for i in range(60)]
        for p in payloads:
            pub.publish(topic, p)
        pub.wait_all()
        # 60 > Mosquitto's max_inflight_messages (20): Receive Maximum lifted the window
        first = drain(a.queue, 60)
        assert [d.payload for d in first] == payloads
        assert all(d.qos == 1 and d.topic == topic for d in first)
        a.stop()  # nothing was acknowledged

        b = subscribers(broker, cid)
        assert b.stats.last_session_present is True
        again = drain(b.queue, 60)
        assert sorted(d.payload for d in again) == sorted(payloads)
        assert b.ack_broker(again) == 60
        b.stop()  # flushes: the broker has processed the PUBACKs before we disconnect
        assert b.stats.flushed_on_stop is True

        c = subscribers(broker, cid)
        pub.publish(topic, b"marker")
        pub.wait_all()
        got = drain(c.queue, 1)  # redeliveries would arrive before the marker
        assert [d.payload for d in got] == [b"marker"], [(d.payload, d.mid) for d in got]
        assert c.queue.empty()
    finally:
        pub.close()


def test_ids_from_an_earlier_connection_are_not_acknowledged(
        broker: RunningBroker, unique: Callable[[str], str],
        subscribers: Callable[..., Subscriber]) -> None:
    cid, dev = unique("ingest"), unique("dev")
    s = subscribers(broker, cid, reconnect_min_s=1, reconnect_max_s=1)
    pub = Publisher(broker.host, broker.port, unique("pub"))
    for i in range(5):
        pub.publish(f"heartcheck/{dev}/ecg", f"x{i}".encode())
    pub.wait_all()
    pub.close()
    old = drain(s.queue, 5)
    broker.stop()  # SIGTERM: Mosquitto saves the session and its in-flight messages
    wait_until(lambda: not s.connected, 10, what="disconnect seen")
    broker.start()
    wait_until(lambda: s.stats.connects == 2 and s.ready.is_set(), 20, what="reconnect + SUBACK")
    assert s.ack_broker(old) == 0
    assert s.stats.stale_acks_skipped == 5
    redelivered = drain(s.queue, 5)
    assert sorted(d.payload for d in redelivered) == sorted(d.payload for d in old)
    assert {d.generation for d in redelivered} == {s.generation}
    assert s.ack_broker(redelivered) == 5


def test_a_full_queue_blocks_the_callback_and_loses_nothing(
        broker: RunningBroker, unique: Callable[[str], str],
        subscribers: Callable[..., Subscriber]) -> None:
    s = subscribers(broker, unique("ingest"), queue_size=5)
    pub = Publisher(broker.host, broker.port, unique("pub"))
    topic = f"heartcheck/{unique('dev')}/ecg"
    for i in range(40):
        pub.publish(topic, f"{i}".encode())
    pub.wait_all()
    wait_until(lambda: s.stats.blocked_puts >= 1, 10, what="a blocked put")
    got: list[InboundMessage] = []
    while len(got) < 40:
        got.append(s.queue.get(timeout=10))
    assert [d.payload for d in got] == [f"{i}".encode() for i in range(40)]
    assert s.ack_broker(got) == 40
    pub.close()


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        SubscriberConfig("127.0.0.1", 0)
    with pytest.raises(ConfigError):
        SubscriberConfig("", 5000)
    with pytest.raises(ConfigError):
        SubscriberConfig("127.0.0.1", 5000, client_id="")
    with pytest.raises(ConfigError):
        SubscriberConfig("127.0.0.1", 5000, receive_maximum=0)
