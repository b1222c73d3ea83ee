"""Ingest's MQTT subscriber SUBSCRIBEs again when a SUBACK refuses the readings' subscription
(ingest/subscriber.py). Mosquitto 2.0.11 grants every SUBSCRIBE, so a scripted MQTT 5 broker
(tests/scripted_mqtt.py) plays one that refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ecgcore.clock import ManualClock
from ingest.subscriber import Subscriber, SubscriberConfig
from tests.conftest import wait_until
from tests.scripted_mqtt import ScriptedBroker


@pytest.fixture
def refusing() -> Iterator[ScriptedBroker]:
    b = ScriptedBroker(lambda _connection, subscribe: subscribe <= 2, v5=True)  # the first two
    try:
        yield b
    finally:
        b.close()


def test_a_refused_subscription_is_sent_again_on_the_same_connection(refusing: ScriptedBroker) -> None:
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
    broker = ScriptedBroker(lambda _connection, _subscribe: True, v5=True)
    sub = Subscriber(SubscriberConfig("127.0.0.1", broker.port, "ingest-never",
                                      reconnect_min_s=0.05, reconnect_max_s=0.2), ManualClock())
    sub.start()
    try:
        wait_until(lambda: sub.stats.subscribe_refusals >= 4, 20, what="four refusals")
        assert not sub.ready.is_set() and broker.connections == 1
    finally:
        sub.stop(flush_timeout_s=2)
        broker.close()
