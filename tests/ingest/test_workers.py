"""Several ingest workers sharing the readings through an MQTT shared subscription, against a
real Mosquitto: what the broker does with a shared group (measured), and that workers on one
store keep every reading once."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ecgcore.clock import SystemClock
from ingest import store_view
from ingest.service import IngestService, ServiceConfig
from lab.stack.broker import RunningBroker
from lab.stack.ports import free_port
from tests.conftest import wait_until
from tests.ingest.conftest import Publisher, ThreadedService, payload_of
from wire import decode_service_status
from wire.topics import INGEST_STATUS_FILTER, ingest_status_topic

pytestmark = pytest.mark.broker


class Member:
    """A persistent (clean_start false) member of a shared subscription that counts what it gets."""

    def __init__(self, broker: RunningBroker, client_id: str, group_filter: str) -> None:
        self.client_id, self.filter, self.broker = client_id, group_filter, broker
        self.got = 0
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = self._connect()

    def _connect(self) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        c.on_message = self._on_message
        c.on_subscribe = lambda *_: self.subscribed.set()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        c.on_connect = lambda cl, *_: cl.subscribe(self.filter, qos=1)
        c.connect(self.broker.host, self.broker.port, clean_start=False, properties=props)
        c.loop_start()
        wait_until(self.subscribed.is_set, 30, what=f"{self.client_id} subscribed")
        return c

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got += 1

    def leave(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def come_back(self) -> None:
        self.subscribed.clear()
        self.client = self._connect()


def test_mosquitto_keeps_giving_an_offline_persistent_member_its_turn(
        broker: RunningBroker, unique: Callable[[str], str]) -> None:
    """The fact the workers' design rests on (ingest/subscriber.py, "Workers"): Mosquitto
    2.0.11 hands a shared group's messages to its members in turn, offline persistent members
    included; their share waits in their session and arrives when they are back."""
    group, topic = unique("grp"), unique("t")
    shared = f"$share/{group}/{topic}/+"
    a, b = Member(broker, unique("a"), shared), Member(broker, unique("b"), shared)
    pub = Publisher(broker.host, broker.port, unique("pub"))
    try:
        for i in range(100):
            pub.publish(f"{topic}/d{i % 5}", b"x")
        pub.wait_all()
        wait_until(lambda: a.got + b.got == 100, 30, what="100 delivered")
        assert a.got == b.got == 50  # round robin while both are connected
        b.leave()
        a.got = b.got = 0
        for i in range(100):
            pub.publish(f"{topic}/d{i % 5}", b"x")
        pub.wait_all()  # every message PUBACKed to the publisher
        wait_until(lambda: a.got >= 50, 30, what="the connected member's share")
        assert a.got == 50  # not 100: the offline member kept its turn
        b.come_back()
        wait_until(lambda: b.got == 50, 30, what="the offline member's share on its return")
        assert a.got == 50
    finally:
        pub.close()
        a.leave()
        b.leave()


def _worker(tmp_path: Path, broker: RunningBroker, name: str, client_id: str) -> ThreadedService:
    config = ServiceConfig(state_dir=tmp_path / "state", host=broker.host, port=broker.port,
                           client_id=client_id, acks=True, worker=name)
    out = io.StringIO()
    return ThreadedService(IngestService(config, SystemClock(), out=out), out).start()


def _retained_statuses(broker: RunningBroker, client_id: str) -> dict[str, dict[str, object]]:
    got: dict[str, dict[str, object]] = {}
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_message = lambda _c, _u, m: got.__setitem__(m.topic, decode_service_status(m.payload, None))
    c.on_subscribe = lambda *_: done.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        c.subscribe(INGEST_STATUS_FILTER, qos=1)
        wait_until(lambda: done.is_set() and len(got) >= 2, 10, what="both workers' retained statuses")
    finally:
        c.disconnect()
        c.loop_stop()
    return got


def test_two_workers_share_the_readings_and_store_each_once(
        tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str]) -> None:
    a = _worker(tmp_path, broker, "1", unique("ingest-1"))
    b = _worker(tmp_path, broker, "2", unique("ingest-2"))
    devices = [unique("dev") for _ in range(4)]
    pub = Publisher(broker.host, broker.port, unique("pub"))
    try:
        for seq in range(50):
            for dev in devices:
                pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, seq))
        for dev in devices:  # copies again: whichever worker gets one finds it stored
            for seq in range(10):
                pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, seq))
        pub.wait_all()
        db = a.service.config.db_path
        assert db == b.service.config.db_path
        wait_until(lambda: store_view.totals(db)["stored"] == 200
                   and store_view.totals(db)["duplicates"] == 40, 20, what="200 stored, 40 duplicates")
        assert store_view.stored_seqs(db) == {d: set(range(50)) for d in devices}
        stats = (a.service.stats, b.service.stats)
        assert all(s.stored > 0 for s in stats)  # both took a share
        assert sum(s.stored for s in stats) == 200 and sum(s.duplicates for s in stats) == 40
        # each worker says it is up on its own topic, under its own broker session
        statuses = _retained_statuses(broker, unique("watch"))
        assert set(statuses) == {ingest_status_topic("1"), ingest_status_topic("2")}
        assert all(s["state"] == "online" for s in statuses.values())
        assert len({s["session"] for s in statuses.values()}) == 2
        ready = {p.name for p in (tmp_path / "state" / "ingest").glob("ready*.json")}
        assert ready == {"ready-1.json", "ready-2.json"}
    finally:
        pub.close()
        a.stop()
        b.stop()


def test_a_worker_name_that_cannot_be_a_topic_level_is_refused(tmp_path: Path) -> None:
    from ingest.__main__ import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["--state-dir", str(tmp_path), "--host", "127.0.0.1", "--port", str(free_port()),
                   "--worker", "a/b"])
    assert rc == 2
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert len(lines) == 1 and "worker name" in lines[0], err.getvalue()

