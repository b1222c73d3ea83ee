"""The fleet's history against a real Mosquitto, one run per delivery mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devices.fleet import FleetConfig
from devices.outbox_view import ledger_sets
from ecgcore.files import read_jsonl
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from tests.devices.conftest import Collector, fleet_config, running_fleet
from wire import ack_topic, encode_ack, seqs_to_ranges

pytestmark = pytest.mark.broker

QOS = {"fire-and-forget": 0, "broker-ack": 1, "end-to-end": 1}


Key = tuple[str, int, int]


def by_reading(events: list[dict[str, Any]]) -> dict[Key, list[tuple[int, dict[str, Any]]]]:
    """(dev, boot, seq) -> [(line number, event)] for every event but `boot` and `truth`."""
    out: dict[Key, list[tuple[int, dict[str, Any]]]] = {}
    for i, e in enumerate(events):
        if e["ev"] not in ("boot", "truth"):
            out.setdefault((e["dev"], e["boot"], e["seq"]), []).append((i, e))
    return out


def check_events_of_one_reading(kinds: list[str], evs: list[dict[str, Any]], delivery: str,
                                buffered: bool) -> None:
    """The events of one reading, in order, against what its delivery mode allows."""
    assert kinds[0] == "generated" and kinds.count("generated") == 1, kinds
    assert all(e["qos"] == QOS[delivery] for e in evs if e["ev"] == "published")
    first_pub = kinds.index("published") if "published" in kinds else len(kinds)
    # nothing is acked before it was published
    assert all(k == "generated" for k in kinds[:first_pub]), kinds
    if delivery == "fire-and-forget":
        assert set(kinds) <= {"generated", "published"}
        assert buffered == ("published" not in kinds), kinds  # deleted when accepted
    elif delivery == "broker-ack":
        assert "ingest_acked" not in kinds
        assert buffered == ("broker_acked" not in kinds), kinds  # deleted at the PUBACK
    else:
        assert kinds.count("ingest_acked") <= 1, kinds  # once, though acked many times
        assert buffered == ("ingest_acked" not in kinds), kinds
        if "ingest_acked" in kinds:
            assert "broker_acked" in kinds, kinds


def check_published_as_received(sub: Collector,
                                readings: dict[Key, list[tuple[int, dict[str, Any]]]]) -> None:
    """Every message the subscriber got was recorded as published, with its backlog flag,
    and its captured_at is the generated event's cap."""
    for r in sub.readings():
        evs = [e for _, e in readings[(r.device_id, r.boot_epoch, r.seq)]]
        assert any(e["ev"] == "published" and e["backlog"] == r.backlog for e in evs), evs
        assert evs[0]["cap"] == r.captured_at
        sends = sum(1 for e in evs if e["ev"] == "published")
        assert sends >= sum(1 for x in sub.readings() if x.key == r.key)


def run_until_ten_readings_each(sub: Collector, cfg: FleetConfig, e2e: bool) -> None:
    """Run the fleet until both devices had 10 readings received (end-to-end: acked, and the
    acked rows gone from the outbox)."""

    def ack_everything_received() -> dict[str, set[int]]:
        """Like the ingest service: ack (again) every seq stored so far."""
        received = {d: {r.seq for r in rs} for d, rs in sub.by_device().items()}
        for device_id, seqs in received.items():
            sub.client.publish(ack_topic(device_id),
                               encode_ack(device_id, seqs_to_ranges(seqs)), qos=1)
        return received

    def enough() -> bool:
        received = ack_everything_received() if e2e else {
            d: {r.seq for r in rs} for d, rs in sub.by_device().items()}
        return len(received) == 2 and all(len(s) >= 10 for s in received.values())

    with running_fleet(cfg):
        wait_until(enough, 20, what="10 readings per device")
        if e2e:
            def acked_rows_gone() -> bool:
                received = ack_everything_received()
                sets = ledger_sets(cfg.outbox_path)
                return all(not (sets[d]["buffered"] & s) for d, s in received.items())

            wait_until(acked_rows_gone, 10, what="acked rows deleted")


@pytest.mark.parametrize("delivery", ["fire-and-forget", "broker-ack", "end-to-end"])
def test_every_reading_has_its_events_in_order(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector], delivery: str,
) -> None:
    sub = collector(broker, unique("sub"), "heartcheck/+/ecg")
    cfg = fleet_config(tmp_path, broker, unique("hc"), devices=2, delivery=delivery,
                       ack_timeout=30.0)
    e2e = delivery == "end-to-end"
    run_until_ten_readings_each(sub, cfg, e2e)
    events = read_jsonl(cfg.history_path)
    final = ledger_sets(cfg.outbox_path)
    readings = by_reading(events)

    boots = [e for e in events if e["ev"] == "boot"]
    assert [(e["dev"], e["boot"], e["next_seq"]) for e in boots] == [
        (d, 1, 0) for d in cfg.device_ids()]
    assert events[:2] == boots  # written before anything else happened
    names = {"generated", "published", "broker_acked", "ingest_acked"}
    assert {e["ev"] for e in events} - {"boot", "truth"} <= names  # no evictions here
    truth = [e for e in events if e["ev"] == "truth"]  # each device's baseline, once
    assert sorted((e["dev"], e["kind"], e["end"]) for e in truth) == [
        (d, "rhythm", None) for d in cfg.device_ids()]
    for device_id in cfg.device_ids():
        generated = {s for (d, b, s), evs in readings.items()
                     if d == device_id and evs[0][1]["ev"] == "generated"}
        assert generated == set(range(final[device_id]["generated"])), device_id
    for (device_id, boot, seq), evs in readings.items():
        kinds = [e["ev"] for _, e in evs]
        assert boot == 1, kinds
        check_events_of_one_reading(kinds, [e for _, e in evs], delivery,
                                    seq in final[device_id]["buffered"])
    check_published_as_received(sub, readings)
    count = {k: sum(1 for e in events if e["ev"] == k) for k in names}
    assert count["published"] >= 20
    if delivery != "fire-and-forget":
        assert count["broker_acked"] >= 15
    if e2e:
        assert count["ingest_acked"] >= 20
