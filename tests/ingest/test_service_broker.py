"""The ingest service against a real Mosquitto: malformed input, duplicates, the persistent
session and end-to-end acks."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import store_view as inspect
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from tests.ingest.conftest import AckCollector, Publisher, ThreadedService, payload_of
from wire import MAX_PAYLOAD_BYTES

pytestmark = pytest.mark.broker


def db_of(ts: ThreadedService) -> Path:
    return ts.service.config.db_path


def quarantine_of(db: Path) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT topic, reason, raw FROM quarantine ORDER BY id").fetchall()


def test_malformed_payloads_are_quarantined_and_the_service_keeps_storing(
        broker_factory: Callable[..., RunningBroker], unique: Callable[[str], str],
        start_service: Callable[..., ThreadedService]) -> None:
    # the lab's broker refuses payloads over the largest reading (message_size_limit); this one
    # lets an oversize payload through, to show ingest quarantining it
    broker = broker_factory(message_size_limit=4 * MAX_PAYLOAD_BYTES)
    svc = start_service(broker, unique("ingest"))
    dev, other = unique("dev"), unique("dev")
    topic = f"heartcheck/{dev}/ecg"
    good = payload_of(dev, 0)
    flipped = bytearray(good)
    flipped[-1] ^= 0xFF
    malformed: list[tuple[str, bytes, str | None]] = [
        (topic, good[:30], "truncated"),
        (topic, good[:-1], "truncated"),
        (topic, good[:2] + b"\x07" + good[3:], "unsupported-version"),
        (topic, good + b"\x00\x00", "bad-length"),
        (topic, b"GARBAGE" + good[7:], "bad-magic"),
        (topic, bytes(flipped), "bad-checksum"),
        (topic, os.urandom(300), None),  # random bytes: some wire reason, never stored
        (topic, b"", "truncated"),
        (topic, b"\x00" * (MAX_PAYLOAD_BYTES + 1), "oversize"),
        (f"heartcheck/{other}/ecg", payload_of(dev, 99), "device-mismatch"),
        ("heartcheck/not a device!/ecg", payload_of(dev, 98), "bad-topic"),
    ]
    pub = Publisher(broker.host, broker.port, unique("pub"))
    try:
        for i in range(10):
            pub.publish(topic, payload_of(dev, i))
        for t, payload, _ in malformed:
            pub.publish(t, payload)
        for i in range(10, 20):
            pub.publish(topic, payload_of(dev, i))
        pub.wait_all()
        db = db_of(svc)
        wait_until(lambda: inspect.totals(db)["stored"] == 20
                   and inspect.totals(db)["quarantined"] == len(malformed), 20,
                   what="20 stored and every malformed message quarantined")
        assert inspect.stored_seqs(db) == {dev: set(range(20))}
        rows = quarantine_of(db)
        assert [(t, raw) for t, _, raw in rows] == [(t, p) for t, p, _ in malformed]
        for (_, reason, _), (_, _, want) in zip(rows, malformed, strict=True):
            if want is None:
                assert reason in {"bad-magic", "truncated", "unsupported-version", "bad-length",
                                  "bad-checksum", "bad-field"}
            else:
                assert reason == want
        # still alive and still storing after all of that
        assert svc.alive
        pub.publish(topic, payload_of(dev, 20))
        pub.wait_all()
        wait_until(lambda: 20 in inspect.stored_seqs(db).get(dev, set()), 10, what="seq 20 stored")
        assert svc.service.stats.internal_errors == 0
    finally:
        pub.close()
    svc.stop()


def test_a_duplicate_publish_is_stored_once(
        broker: RunningBroker, unique: Callable[[str], str],
        start_service: Callable[..., ThreadedService]) -> None:
    svc = start_service(broker, unique("ingest"))
    dev = unique("dev")
    pub = Publisher(broker.host, broker.port, unique("pub"))
    pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, 3))
    pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, 3))
    pub.wait_all()
    pub.close()
    db = db_of(svc)
    wait_until(lambda: inspect.device_stats(db).get(dev, {}).get("duplicates") == 1, 10,
               what="the duplicate recorded")
    st = inspect.device_stats(db)[dev]
    assert (st["stored"], st["duplicates"]) == (1, 1)
    assert inspect.totals(db)["stored"] == 1
    svc.stop()


def test_readings_published_while_ingest_is_down_are_stored_after_restart(
        broker: RunningBroker, unique: Callable[[str], str], tmp_path: Path,
        start_service: Callable[..., ThreadedService]) -> None:
    cid, dev = unique("ingest"), unique("dev")
    state = tmp_path / "persist"
    first = start_service(broker, cid, state_dir=state)
    first.stop()
    pub = Publisher(broker.host, broker.port, unique("pub"))
    for i in range(50):
        pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, i))
    pub.wait_all()  # the broker has them all (PUBACKed to the publisher) while ingest is down
    pub.close()
    assert inspect.stored_seqs(db_of(first)) == {}
    second = start_service(broker, cid, state_dir=state)
    wait_until(lambda: inspect.stored_seqs(db_of(second)).get(dev) == set(range(50)), 20,
               what="the backlog stored after restart")
    assert second.service.source.stats.last_session_present is True
    second.stop()


def test_end_to_end_acks_name_exactly_the_stored_seqs_and_duplicates_are_acked_again(
        broker: RunningBroker, unique: Callable[[str], str],
        start_service: Callable[..., ThreadedService]) -> None:
    collector = AckCollector(broker.host, broker.port, unique("acks"))
    svc = start_service(broker, unique("ingest"), acks=True)
    d1, d2 = unique("dev"), unique("dev")
    pub = Publisher(broker.host, broker.port, unique("pub"))
    try:
        seqs1 = [0, 1, 2, 3, 5, 8, 9]
        for s in seqs1:
            pub.publish(f"heartcheck/{d1}/ecg", payload_of(d1, s))
        pub.publish(f"heartcheck/{d1}/ecg", payload_of(d1, 4)[:-3])  # malformed: never acked
        for s in range(4):
            pub.publish(f"heartcheck/{d2}/ecg", payload_of(d2, s))
        pub.wait_all()
        wait_until(lambda: collector.acked(d1) == set(seqs1) and collector.acked(d2) == set(range(4)),
                   20, what="acks for every stored seq")
        stored = inspect.stored_seqs(db_of(svc))
        assert stored == {d1: set(seqs1), d2: set(range(4))}
        assert collector.count(d1, 5) == 1
        pub.publish(f"heartcheck/{d1}/ecg", payload_of(d1, 5))  # a resend of a stored reading
        pub.wait_all()
        wait_until(lambda: collector.count(d1, 5) == 2, 10, what="the duplicate acked again")
        assert inspect.device_stats(db_of(svc))[d1]["duplicates"] == 1
        assert collector.acked() == {s for v in stored.values() for s in v}
    finally:
        pub.close()
        collector.close()
    svc.stop()


def test_started_before_the_broker_it_becomes_ready_when_the_broker_comes_up(
        broker: RunningBroker, unique: Callable[[str], str],
        start_service: Callable[..., ThreadedService]) -> None:
    broker.stop()
    svc = start_service(broker, unique("ingest"), wait_ready=False)
    wait_until(lambda: svc.service.source.stats.connect_failures >= 1, 10,
               what="a refused connection attempt")
    assert not svc.service.ready_written.is_set()
    assert not svc.service.config.ready_path.exists()
    broker.start()
    wait_until(svc.service.ready_written.is_set, 20, what="ready after the broker came up")
    assert svc.service.config.ready_path.exists()
    svc.stop()


def test_after_a_broker_kill_9_it_resubscribes_and_keeps_storing(
        broker: RunningBroker, unique: Callable[[str], str],
        start_service: Callable[..., ThreadedService]) -> None:
    svc = start_service(broker, unique("ingest"))
    dev = unique("dev")
    db = db_of(svc)
    pub = Publisher(broker.host, broker.port, unique("pub"))
    pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, 0))
    pub.wait_all()
    pub.close()
    wait_until(lambda: inspect.stored_seqs(db) == {dev: {0}}, 10, what="seq 0 stored")
    src = svc.service.source
    # kill -9; the session may be lost with it (persistence is a 2-s snapshot). stop() only
    # reaps the dead process and closes its pipe (RunningBroker.kill() leaves the pipe open).
    broker.signal(signal.SIGKILL)
    broker.stop()
    wait_until(lambda: not src.connected, 10, what="the disconnect")
    broker.start()
    wait_until(lambda: src.stats.connects == 2 and src.ready.is_set(), 20,
               what="reconnected and subscribed again")
    pub = Publisher(broker.host, broker.port, unique("pub"))
    pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, 1))
    pub.wait_all()
    pub.close()
    wait_until(lambda: inspect.stored_seqs(db) == {dev: {0, 1}}, 10, what="seq 1 stored")
    assert svc.alive
    svc.stop()
