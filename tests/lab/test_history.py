"""History parsing and loading: device events, ingest rows, fault windows, $SYS samples, the final
outbox, and a state dir read end to end (without starting anything)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.outbox import SCHEMA as OUTBOX_SCHEMA
from ingest.store import SCHEMA as INGEST_SCHEMA
from lab.checker import CRASH, OVERFLOW, check
from lab.history import (
    Boot,
    BrokerAcked,
    BrokerSample,
    Evicted,
    FaultWindow,
    Generated,
    History,
    IngestAcked,
    Published,
    Stored,
    broker_samples,
    label_windows,
    load_history,
    pair_faults,
    parse_device_event,
    parse_device_events,
    read_ingest,
)
from lab.history.brokerstats import DROPPED, STORED


def write_jsonl(path: Path, records: list[dict[str, Any]], torn: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + torn)


# --- device events --------------------------------------------------------------------------


def test_every_device_event_kind() -> None:
    base = {"t": 5.5, "dev": "hc-0001", "boot": 2}
    assert parse_device_event({**base, "ev": "boot", "next_seq": 118}) == Boot(5.5, "hc-0001", 2, 118)
    assert parse_device_event({**base, "ev": "generated", "seq": 118, "cap": 4.0}) == \
        Generated(5.5, "hc-0001", 2, 118, 4.0)
    assert parse_device_event({**base, "ev": "published", "seq": 118, "qos": 0, "backlog": True}) == \
        Published(5.5, "hc-0001", 2, 118, 0, True)
    assert parse_device_event({**base, "ev": "broker_acked", "seq": 1}) == BrokerAcked(5.5, "hc-0001", 2, 1)
    assert parse_device_event({**base, "ev": "ingest_acked", "seq": 1}) == IngestAcked(5.5, "hc-0001", 2, 1)
    assert parse_device_event({**base, "ev": "evicted", "seq": 3, "reason": "outbox-full:drop-oldest"}) == \
        Evicted(5.5, "hc-0001", 2, 3, "outbox-full:drop-oldest")
    assert Generated(1, "a", 2, 3).key == ("a", 2, 3)


@pytest.mark.parametrize("rec", [
    {"t": 1, "ev": "generated", "dev": "a", "boot": 1},  # no seq
    {"t": 1, "ev": "published", "dev": "a", "boot": 1, "seq": "7"},  # seq not an int
    {"t": "x", "ev": "boot", "dev": "a", "boot": 1, "next_seq": 0},
    {"t": 1, "ev": "teleported", "dev": "a", "boot": 1, "seq": 0},
    {"t": 1, "ev": "generated", "dev": 5, "boot": 1, "seq": 0},
    {"t": 1, "ev": "boot", "dev": "a", "boot": True, "next_seq": 0},
])
def test_malformed_device_records_are_skipped_and_counted(rec: dict[str, Any]) -> None:
    good = {"t": 1, "ev": "generated", "dev": "a", "boot": 1, "seq": 0}
    events, skipped = parse_device_events([good, rec, good])
    assert len(events) == 2 and skipped == 1


# --- fault windows --------------------------------------------------------------------------


def test_pair_faults_by_id_by_seq_and_by_fault_target() -> None:
    recs = [
        {"t": 10, "event": "fault_start", "fault": "cut", "target": "ingest", "id": "outage"},
        {"t": 11, "event": "fault_start", "fault": "slow", "target": "devices", "seq": 3},
        {"t": 12, "event": "fault_phase", "fault": "flap", "target": "devices", "seq": 3, "phase": "down"},
        {"t": 13, "event": "fault_start", "fault": "kill", "target": "broker", "persistence": False},
        {"t": 14, "event": "fault_end", "fault": "slow", "target": "devices", "seq": 3, "reason": "healed"},
        {"t": 15, "event": "fault_end", "fault": "kill", "target": "broker"},
        {"t": 16, "event": "fault_start", "fault": "kill", "target": "broker"},
        {"t": 20, "event": "fault_end", "fault": "cut", "target": "ingest", "id": "outage"},
        {"t": 21, "event": "fault_end", "fault": "stop", "target": "ingest"},  # never started
        {"t": 22, "event": "fault_start"},  # malformed
    ]
    windows, skipped = pair_faults(recs)
    assert windows == [
        FaultWindow("outage", "cut", "ingest", 10, 20),
        FaultWindow("slow-devices-1", "slow", "devices", 11, 14),
        FaultWindow("kill-broker-1", "kill", "broker", 13, 15, persistence=False),
        FaultWindow("kill-broker-2", "kill", "broker", 16, None),
    ]
    assert skipped == 2


def test_fault_window_contains() -> None:
    w = FaultWindow("w", "cut", "ingest", 10, 20)
    assert w.contains(10) and w.contains(20) and not w.contains(20.1) and not w.contains(9.9)
    assert w.contains(9.5, before=1) and w.contains(30, until=30)
    assert FaultWindow("o", "cut", "ingest", 10, None).contains(1e9)


@given(st.lists(st.tuples(st.sampled_from(["cut", "kill"]), st.sampled_from(["ingest", "broker"]),
                          st.booleans()), max_size=20))
def test_pairing_never_invents_windows(ops: list[tuple[str, str, bool]]) -> None:
    recs = [{"t": i, "event": "fault_start" if start else "fault_end", "fault": f, "target": tgt}
            for i, (f, tgt, start) in enumerate(ops)]
    windows, skipped = pair_faults(recs)
    assert len(windows) == sum(1 for *_, start in ops if start)
    ends = sum(1 for *_, start in ops if not start)
    assert sum(1 for w in windows if w.end is not None) + skipped == ends
    assert all(w.end is None or w.end >= w.start for w in windows)
    assert len({w.id for w in windows}) == len(windows)


def test_label_windows_gives_proxy_windows_their_scenario_ids() -> None:
    h = History(faults=[FaultWindow("cut-ingest-1", "cut", "ingest", 1000.2, 1100),
                        FaultWindow("slow-devices-1", "slow", "devices", 1200.1, 1300),
                        FaultWindow("cut-ingest-2", "cut", "ingest", 1500.4, 1600),
                        FaultWindow("crash-1", "kill", "ingest", 1700, 1710)])
    named = label_windows(h, [("first", "cut", "ingest", 1000), ("second", "cut", "ingest", 1500),
                              ("lag", "latency", "devices", 1200), ("far", "cut", "devices", 5000),
                              ("crash-1", "kill", "ingest", 1700)], tolerance_s=2)
    assert [w.id for w in named.faults] == ["first", "lag", "second", "crash-1"]
    assert h.faults[0].id == "cut-ingest-1"  # the original is untouched
    # two scenario faults never take the same window
    one = label_windows(History(faults=[FaultWindow("w", "cut", "ingest", 10, 20)]),
                        [("a", "cut", "ingest", 10), ("b", "cut", "ingest", 10)], tolerance_s=5)
    assert [w.id for w in one.faults] == ["a"]


# --- broker samples -------------------------------------------------------------------------


def test_broker_samples_carry_values_forward_within_an_incarnation() -> None:
    recs = [
        {"t": 1, "incarnation": 0, "values": {STORED: 5}},
        {"t": 2, "incarnation": 0, "values": {DROPPED: 3}},
        {"t": 3, "incarnation": 0, "values": {"clients/connected": 9}},  # neither counter
        {"t": 4, "incarnation": 1, "values": {DROPPED: 0}},
        {"t": 5, "values": "garbage"},
    ]
    samples, skipped = broker_samples(recs)
    assert samples == [BrokerSample(1, 0, 5, None), BrokerSample(2, 0, 5, 3), BrokerSample(4, 1, None, 0)]
    assert skipped == 1


# --- loading a state dir --------------------------------------------------------------------


def make_ingest_db(path: Path, readings: list[tuple[Any, ...]], dups: list[tuple[Any, ...]] = (),
                   quarantine: list[tuple[Any, ...]] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(INGEST_SCHEMA)
    for dev, boot, seq, cap, recv, at, n, rate, backlog in readings:
        db.execute("INSERT INTO readings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (dev, boot, seq, cap, recv, at, rate, 1.0, n, backlog, 0, 0, 1, b"", int(backlog)))
    db.executemany("INSERT INTO duplicates VALUES (?,?,?,?)", dups)
    db.executemany("INSERT INTO quarantine (received_at, topic, reason, detail, raw) VALUES (?,?,?,?,?)",
                   quarantine)
    db.commit()
    db.close()


def make_outbox_db(path: Path, devices: dict[str, tuple[int, int]], outbox: list[tuple[str, int, int]],
                   evictions: list[tuple[str, int, int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(OUTBOX_SCHEMA)
    for dev, (boot, next_seq) in devices.items():
        db.execute("INSERT INTO devices (device_id, boot_epoch, next_seq) VALUES (?,?,?)",
                   (dev, boot, next_seq))
    for dev, seq, boot in outbox:
        db.execute("INSERT INTO outbox (device_id, seq, boot_epoch, captured_at, enqueued_at, payload)"
                   " VALUES (?,?,?,0,0,x'00')", (dev, seq, boot))
    for dev, seq, boot, reason in evictions:
        db.execute("INSERT INTO evictions VALUES (?,?,?,0,?,0)", (dev, seq, boot, reason))
    db.commit()
    db.close()


def test_read_ingest_in_store_order(tmp_path: Path) -> None:
    db = tmp_path / "ingest.sqlite"
    make_ingest_db(db, [("a", 1, 1, 10.0, 12.0, 13.0, 250, 250, 1),
                        ("a", 1, 0, 9.0, 11.0, 12.5, 125, 250, 0)],
                   dups=[("a", 1, 0, 14.0)],
                   quarantine=[(15.0, "heartcheck/hc-0001/ecg", "bad-version", "v9", b"\x09"),
                               (16.0, "nonsense", "bad-topic", "", b"")])
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    stored, dups, quarantined, refused = read_ingest(db)
    assert stored == [Stored(12.5, "a", 1, 0, 9.0, 11.0, 0.5, False),
                      Stored(13.0, "a", 1, 1, 10.0, 12.0, 1.0, True)]
    assert stored[1].latency_s == 2.0
    assert [d.key for d in dups] == [("a", 1, 0)] and refused == {}
    assert [(q.dev, q.reason) for q in quarantined] == [("hc-0001", "bad-version"), (None, "bad-topic")]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # read-only
    assert read_ingest(tmp_path / "missing.sqlite") == ([], [], [], {})


def test_empty_state_dir_gives_an_empty_history(tmp_path: Path) -> None:
    h = load_history(tmp_path)
    assert h.device_events == () and h.stored == () and h.faults == () and h.broker == ()
    assert h.final_buffered is None and h.delivery is None and h.ended_at is None
    assert not (tmp_path / "ingest").exists()  # nothing created


def test_load_history_from_a_state_dir(tmp_path: Path) -> None:
    dev = [
        {"t": 0, "ev": "boot", "dev": "a", "boot": 1, "next_seq": 0},
        {"t": 1, "ev": "generated", "dev": "a", "boot": 1, "seq": 0, "cap": 0.0},
        {"t": 1.1, "ev": "published", "dev": "a", "boot": 1, "seq": 0, "qos": 1, "backlog": False},
        {"t": 1.2, "ev": "broker_acked", "dev": "a", "boot": 1, "seq": 0},
        {"t": 2, "ev": "generated", "dev": "a", "boot": 1, "seq": 1, "cap": 1.0},
        {"t": 2.1, "ev": "published", "dev": "a", "boot": 1, "seq": 1, "qos": 1, "backlog": False},
        {"t": 2.2, "ev": "broker_acked", "dev": "a", "boot": 1, "seq": 1},
        {"t": 3, "ev": "generated", "dev": "a", "boot": 1, "seq": 2, "cap": 2.0},
        {"t": 5, "ev": "boot", "dev": "a", "boot": 2, "next_seq": 2},  # seq 2 was not committed
        {"t": 6, "ev": "generated", "dev": "a", "boot": 2, "seq": 2, "cap": 5.0},
    ]
    write_jsonl(tmp_path / "history" / "devices.jsonl", dev, torn='{"t": 7, "ev": "gener')
    write_jsonl(tmp_path / "history" / "nemesis.jsonl", [
        {"t": 1.5, "event": "fault_start", "fault": "cut", "target": "ingest", "id": "outage"},
        {"t": 4.5, "event": "fault_start", "fault": "kill", "target": "devices", "id": "reboot"},
        {"t": 5, "event": "fault_end", "fault": "kill", "target": "devices", "id": "reboot"},
        {"t": 9, "event": "fault_end", "fault": "cut", "target": "ingest", "id": "outage"},
    ])
    write_jsonl(tmp_path / "watch" / "sys.jsonl", [
        {"t": 0.5, "incarnation": 0, "values": {STORED: 10, DROPPED: 0}},
        {"t": 3, "incarnation": 0, "values": {STORED: 11, DROPPED: 1}},
    ])
    make_ingest_db(tmp_path / "ingest" / "ingest.sqlite", [("a", 1, 0, 0.0, 1.3, 1.4, 250, 250, 0)])
    make_outbox_db(tmp_path / "fleet" / "outbox.sqlite", {"a": (2, 3)}, [("a", 2, 2)], [])
    (tmp_path / "stack.json").write_text(json.dumps({"delivery": "broker-ack", "persistence": True}))

    h = load_history(tmp_path)
    assert len(h.device_events) == len(dev)  # the torn last line is skipped silently
    assert h.skipped == {}
    assert [w.id for w in h.faults] == ["outage", "reboot"]
    assert h.broker[-1] == BrokerSample(3, 0, 11, 1)
    assert h.final_buffered == {"a": frozenset({2})} and h.final_next_seq == {"a": 3}
    assert h.final_evicted == {"a": {}}
    assert (h.delivery, h.broker_persistence) == ("broker-ack", True)
    assert h.ended_at == 9

    r = check(h)
    assert r.outcomes[("a", 1, 0)].outcome == "stored"
    assert (r.outcomes[("a", 1, 1)].outcome, r.outcomes[("a", 1, 1)].cause) == ("lost", OVERFLOW)
    assert (r.outcomes[("a", 1, 2)].cause, r.outcomes[("a", 1, 2)].window) == (CRASH, "reboot")
    assert r.outcomes[("a", 2, 2)].outcome == "buffered"
    assert r.totals.committed == 3 and r.balanced()


def test_history_normalises_its_collections() -> None:
    h = History(device_events=[Boot(0, "a", 1, 0)], final_buffered={"a": {1, 2}})
    assert isinstance(h.device_events, tuple)
    assert h.final_buffered == {"a": frozenset({1, 2})}
    assert list(h.events(Boot)) == [Boot(0, "a", 1, 0)]
