"""The fleet against a real Mosquitto, its loop running in a background thread."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from devices.outbox_view import device_summaries, ledger_sets
from ecgcore.files import read_json
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from tests.devices.conftest import Collector, fleet_config, running_fleet
from wire import decode_status, encode_ack, seqs_to_ranges

pytestmark = pytest.mark.broker


def test_broker_ack_fleet_publishes_consecutive_readings(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector],
) -> None:
    prefix = unique("hc")
    sub = collector(broker, unique("sub"), "heartcheck/+/ecg")
    cfg = fleet_config(tmp_path, broker, prefix, devices=5, delivery="broker-ack")
    with running_fleet(cfg) as fleet:
        wait_until(lambda: len(sub.by_device()) == 5
                   and all(len(rs) >= 6 for rs in sub.by_device().values()),
                   20, what="6 readings from each of 5 devices")
        doc = wait_until(lambda: read_json(cfg.devices_json), 5, what="devices.json")
    readings = sub.by_device()
    assert sorted(readings) == cfg.device_ids()
    for device_id, rs in readings.items():
        seqs = [r.seq for r in rs]
        assert seqs == list(range(len(seqs))), device_id  # consecutive, in order, no gaps
        assert all(r.boot_epoch == 1 and r.sample_rate_hz == 250 and r.samples.size == 50
                   for r in rs)
        steps = [b.captured_at - a.captured_at for a, b in itertools.pairwise(rs)]
        assert all(abs(s - 0.2) < 1e-5 for s in steps)  # whole microseconds on the wire
    assert doc["delivery"] == "broker-ack" and set(doc["devices"]) == set(cfg.device_ids())
    assert set(doc) == {"pid", "updated_at", "delivery", "devices"}  # docs/architecture.md
    assert all(set(d) == {"online", "since", "reconnects", "boot_epoch"}
               for d in doc["devices"].values())
    # PUBACKed rows were deleted: after the graceful stop only a device's newest readings, whose
    # PUBACK had not come, remain, in one run at its end (the last tick's; a tick that ran late
    # under load catches up on a few 0.2-s chunks: seen in CI, 6 rows over 5 devices)
    for s in device_summaries(cfg.outbox_path):
        if s["buffered"]:
            assert s["newest_seq"] == s["generated"] - 1, s
            assert s["buffered"] == s["newest_seq"] - s["oldest_seq"] + 1 <= 3, s
    assert fleet.bad_acks == 0
    final = json.loads(cfg.devices_json.read_text())
    assert not any(d["online"] for d in final["devices"].values())


def test_end_to_end_resends_until_acked_then_deletes(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector],
) -> None:
    prefix = unique("hc")
    sub = collector(broker, unique("sub"), "heartcheck/+/ecg")
    cfg = fleet_config(tmp_path, broker, prefix, devices=2, delivery="end-to-end",
                       ack_timeout=1.0)
    device_id = cfg.device_ids()[0]

    def resent() -> bool:
        rs = sub.by_device().get(device_id, [])
        seqs = [r.seq for r in rs]
        return any(r.backlog and seqs.count(r.seq) >= 2 for r in rs)

    with running_fleet(cfg):
        wait_until(resent, 15, what="a reading sent again after the ack timeout")
        buffered = ledger_sets(cfg.outbox_path)[device_id]["buffered"]
        # nothing acked: every row sent so far stays (the probe's jitter decides how many)
        assert len(buffered) >= 3
        assert {r.seq for r in sub.by_device()[device_id]} <= buffered
        received = {r.seq for r in sub.by_device()[device_id]}
        acked = sorted(received)[: len(received) // 2]
        ack = encode_ack(device_id, seqs_to_ranges(acked))
        sub.client.publish(f"heartcheck/{device_id}/ack", ack, qos=1)
        wait_until(lambda: not (ledger_sets(cfg.outbox_path)[device_id]["buffered"]
                                & set(acked)), 10, what="acked rows deleted")

        def times_received() -> dict[int, int]:
            seqs = [r.seq for r in sub.by_device()[device_id]]
            return {s: seqs.count(s) for s in acked}

        at_ack = times_received()
        count_after_ack = len(sub.by_device()[device_id])
        # 15 more messages at 5 readings/s take longer than the 1-s ack timeout
        wait_until(lambda: len(sub.by_device()[device_id]) > count_after_ack + 15, 10,
                   what="more readings after the ack")
        assert times_received() == at_ack  # acked readings are not sent again
    sets = ledger_sets(cfg.outbox_path)
    # the acked rows are gone for good; the other device, never acked, kept everything
    assert not sets[device_id]["buffered"] & set(acked)
    other = cfg.device_ids()[1]
    assert sets[other]["buffered"] == set(range(sets[other]["generated"]))


def test_broker_restart_buffers_then_drains_the_backlog(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector],
) -> None:
    prefix = unique("hc")
    # a persistent session, so the broker keeps what the devices drain while it reconnects
    sub = collector(broker, unique("sub"), "heartcheck/+/ecg", persistent=True)
    cfg = fleet_config(tmp_path, broker, prefix, devices=2, delivery="broker-ack")

    def online(flag: bool) -> bool:
        doc = read_json(cfg.devices_json) or {"devices": {}}
        states = [d["online"] for d in doc["devices"].values()]
        return len(states) == 2 and all(s is flag for s in states)

    with running_fleet(cfg):
        wait_until(lambda: len(sub.readings()) >= 4, 15, what="first readings")
        broker.stop()  # SIGTERM: Mosquitto saves the subscriber's session
        wait_until(lambda: online(False), 20, what="devices seen offline")
        wait_until(lambda: all(s["buffered"] >= 5 for s in device_summaries(cfg.outbox_path)),
                   10, what="readings buffered during the outage")
        broker.start()
        wait_until(lambda: online(True), 20, what="devices back online")
        wait_until(lambda: all(s["buffered"] <= 2 for s in device_summaries(cfg.outbox_path)),
                   15, what="the backlog drained")
        generated = {s["device_id"]: s["generated"] for s in device_summaries(cfg.outbox_path)}
        wait_until(lambda: all({r.seq for r in sub.by_device().get(d, [])} >= set(range(n - 2))
                               for d, n in generated.items()),
                   15, what="the subscriber received every generated reading")
    doc = json.loads(cfg.devices_json.read_text())
    assert all(d["reconnects"] >= 1 for d in doc["devices"].values())
    for device_id, rs in sub.by_device().items():
        assert any(r.backlog for r in rs), device_id  # the outage's readings came from the outbox
        assert all(r.boot_epoch == 1 for r in rs)
    assert all(s["evicted"] == 0 for s in device_summaries(cfg.outbox_path))


def test_status_is_online_while_running_and_offline_after_a_stop(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector],
) -> None:
    prefix = unique("hc")
    cfg = fleet_config(tmp_path, broker, prefix, devices=2, delivery="fire-and-forget")
    with running_fleet(cfg):
        live = collector(broker, unique("sub"), f"heartcheck/{prefix}-0000/status")
        wait_until(lambda: any(decode_status(p)["state"] == "online"
                               for _, p, _ in live.snapshot()), 10, what="online status")
    after = collector(broker, unique("sub"), "heartcheck/+/status")
    wait_until(lambda: len(after.snapshot()) == 2, 10, what="two retained statuses")
    states = {decode_status(p)["device_id"]: (decode_status(p)["state"], retained)
              for _, p, retained in after.snapshot()}
    assert states == dict.fromkeys(cfg.device_ids(), ("offline", True))


def test_end_to_end_subscribes_to_acks_again_after_a_broker_restart(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector],
) -> None:
    cfg = fleet_config(tmp_path, broker, unique("hc"), devices=1, delivery="end-to-end",
                       ack_timeout=30.0)
    device_id = cfg.device_ids()[0]

    def online(flag: bool) -> bool:
        doc = read_json(cfg.devices_json) or {"devices": {}}
        return [d["online"] for d in doc["devices"].values()] == [flag]

    with running_fleet(cfg):
        wait_until(lambda: online(True), 15, what="online")
        broker.stop()
        wait_until(lambda: online(False), 20, what="offline")
        broker.start()
        wait_until(lambda: online(True), 20, what="online again")
        acker = collector(broker, unique("acker"), f"heartcheck/{device_id}/ack")
        generated = ledger_sets(cfg.outbox_path)[device_id]["generated"]
        assert generated >= 3
        acked = set(range(generated))

        def acked_rows_gone() -> bool:
            # the device subscribes right after its CONNACK; until its SUBACK an ack may miss it
            acker.client.publish(f"heartcheck/{device_id}/ack",
                                 encode_ack(device_id, [(0, generated - 1)]), qos=1)
            return not ledger_sets(cfg.outbox_path)[device_id]["buffered"] & acked

        wait_until(acked_rows_gone, 10, interval=0.5, what="acked rows deleted after the restart")
    assert json.loads(cfg.devices_json.read_text())["devices"][device_id]["reconnects"] >= 1


def test_mqtt_3_1_1_devices_keep_their_session_and_take_acks(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector],
) -> None:
    """--mqtt-version 3.1.1 (what a NATS cluster speaks): readings flow, an end-to-end ack
    sent while the device is connected reaches it and deletes the rows; the broker sees a
    3.1.1 client with a kept session (clean_session 0)."""
    prefix = unique("hc")
    sub = collector(broker, unique("sub"), "heartcheck/+/ecg")
    cfg = fleet_config(tmp_path, broker, prefix, devices=2, delivery="end-to-end",
                       ack_timeout=5.0, mqtt311=True)
    device_id = cfg.device_ids()[0]
    with running_fleet(cfg):
        wait_until(lambda: len(sub.by_device().get(device_id, [])) >= 5, 15, what="5 readings")
        acked = sorted({r.seq for r in sub.by_device()[device_id]})
        ack = encode_ack(device_id, seqs_to_ranges(acked))
        sub.client.publish(f"heartcheck/{device_id}/ack", ack, qos=1)
        wait_until(lambda: not (ledger_sets(cfg.outbox_path)[device_id]["buffered"] & set(acked)),
                   10, what="acked rows deleted")
    log = broker.settings.log_file.read_text()
    line = next(ln for ln in log.splitlines() if f" as {device_id} " in ln and "New client" in ln)
    assert "(p2, c0," in line, line  # Mosquitto's p2 is MQTT 3.1.1 (p5: MQTT 5); c0: session kept
