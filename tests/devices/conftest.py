"""Fixtures of the devices tests: a collecting MQTT subscriber and an in-thread fleet."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices.fleet import Fleet, FleetConfig
from ecgcore.clock import Clock
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from wire import Reading, decode_reading


class Collector:
    """A plain paho subscriber (its own network thread) that keeps every message."""

    def __init__(self, broker: RunningBroker, client_id: str, topic: str, *,
                 persistent: bool = False) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []  # topic, payload, retained
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.topic = topic
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        props = None
        if persistent:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, keepalive=10,
                            clean_start=not persistent, properties=props)
        self.client.loop_start()
        wait_until(self._subscribed.is_set, 10, what="the test subscriber's SUBACK")

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def snapshot(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.messages)

    def readings(self) -> list[Reading]:
        return [decode_reading(p) for t, p, _ in self.snapshot() if t.endswith("/ecg")]

    def by_device(self) -> dict[str, list[Reading]]:
        out: dict[str, list[Reading]] = {}
        for r in self.readings():
            out.setdefault(r.device_id, []).append(r)
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collector() -> Iterator[Callable[..., Collector]]:
    made: list[Collector] = []

    def make(broker: RunningBroker, client_id: str, topic: str, **kw: bool) -> Collector:
        c = Collector(broker, client_id, topic, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@contextmanager
def running_fleet(config: FleetConfig, clock: Clock | None = None) -> Iterator[Fleet]:
    """Run a Fleet's loop in a background thread; stop it gracefully on exit."""
    fleet = Fleet(config, clock=clock, out=io.StringIO())
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fleet.run()
        except BaseException as exc:  # noqa: BLE001 -- not swallowed: the test's thread re-raises it
            errors.append(exc)

    thread = threading.Thread(target=target, name="fleet", daemon=True)
    thread.start()
    try:
        wait_until(lambda: fleet.running or errors or not thread.is_alive(), 60,
                   what="the fleet to start")
        if errors:
            raise errors[0]
        yield fleet
    finally:
        fleet.request_stop()
        thread.join(15)
    assert not thread.is_alive(), "the fleet did not stop within 15 s"
    if errors:
        raise errors[0]


def fleet_config(tmp_path: Path, broker: RunningBroker, prefix: str, **kw: object) -> FleetConfig:
    """A small, fast fleet: synthetic ECG, 0.2-s chunks unless overridden."""
    base: dict[str, object] = {
        "state_dir": tmp_path / "state", "host": broker.host, "port": broker.port, "devices": 3,
        "delivery": "broker-ack", "chunk_seconds": 0.2, "ecg_source": "synthetic",
        "id_prefix": prefix,
    }
    base.update(kw)
    return FleetConfig(**base)  # type: ignore[arg-type]
