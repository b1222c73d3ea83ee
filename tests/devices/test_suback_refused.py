"""A refused acks subscription ends the device's connection, and the next one subscribes again.

A NATS node answers SUBACK 0x80 when it cannot create the session's JetStream consumer in time
(seen under load in full runs); Mosquitto 2.0.11 grants every SUBSCRIBE, so a scripted MQTT
3.1.1 broker (tests/scripted_mqtt.py) plays the refusing one here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from devices.mqtt_adapter import JitterBackoff, MqttHub
from ecgcore.clock import ManualClock
from tests.conftest import wait_until
from tests.scripted_mqtt import ScriptedBroker


def pump(hub: MqttHub) -> None:
    """One pass of the fleet's loop: start due connections, read and write, apply the events."""
    hub.service()
    hub.poll(0.02)
    hub.drain()


@pytest.fixture
def refusing() -> Iterator[ScriptedBroker]:
    b = ScriptedBroker(lambda connection, _subscribe: connection <= 3)  # the first three connections
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
        pump(hub)
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
    silent = ScriptedBroker(lambda connection, _subscribe: connection == 1, silent=True)
    hub = MqttHub("127.0.0.1", silent.port, ManualClock(), np.random.default_rng(0),
                  subscribe_acks=True, mqtt311=True, backoff=JitterBackoff(base=0.05, cap=0.2),
                  subscribe_timeout=0.5)
    link = hub.add("hc-0000", boot_epoch=1)

    def step() -> bool:
        pump(hub)
        return link.online and link.subscribe_sent is None and link.subscribe_refused == 1

    try:
        wait_until(step, 20, what="a second connection whose SUBSCRIBE is answered")
        assert link.connects == 2 and silent.subacks == [0x80, 0x01], (link.connects, silent.subacks)
    finally:
        hub.close()
        silent.close()
