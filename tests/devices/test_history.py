"""The device history (history/devices.jsonl), with the pure device/outbox code: no broker."""

from __future__ import annotations

import io
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devices.device import Device, DeviceConfig
from devices.ecg_source import EcgStream, SyntheticSource
from devices.fleet import Fleet, FleetConfig
from devices.history import HistoryFile, NoHistory
from devices.outbox import REASON_DROP_OLDEST, REASON_REJECT_NEW, Outbox
from devices.outbox_view import ledger_sets
from devices.profile import PatientProfile
from ecgcore.clock import ManualClock
from ecgcore.files import read_jsonl
from ecgcore.modes import Delivery
from lab.stack.ports import free_port
from tests.devices.test_device import FakePublisher
from wire import Reading, decode_reading, encode_reading

PROFILE = PatientProfile(hr_bpm=72, hrv=1.0, noise=0.01, seed=42)
T0 = 1_700_000_000.0
DEV = "hc-0001"


def compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def test_every_event_is_compact_json_with_the_documented_keys_in_order(tmp_path: Path) -> None:
    path = tmp_path / "history" / "devices.jsonl"
    h = HistoryFile(path)
    t = T0 + 0.25
    h.boot(t, DEV, 2, 118)
    h.generated(t, DEV, 2, 118, T0)
    h.published(t, DEV, 2, 118, 1, False)
    h.published(t, DEV, 1, 3, 0, True)
    h.broker_acked(t, DEV, 2, 118)
    h.ingest_acked(t, DEV, 2, 118)
    h.evicted(t, DEV, 2, 3, REASON_DROP_OLDEST)
    assert not path.read_text()  # nothing reaches the OS before flush()
    assert h.flush() == 7 and h.flush() == 0
    h.close()
    expected = [  # docs/architecture.md, "History (for the checker)"
        {"t": t, "ev": "boot", "dev": DEV, "boot": 2, "next_seq": 118},
        {"t": t, "ev": "generated", "dev": DEV, "boot": 2, "seq": 118, "cap": T0},
        {"t": t, "ev": "published", "dev": DEV, "boot": 2, "seq": 118, "qos": 1, "backlog": False},
        {"t": t, "ev": "published", "dev": DEV, "boot": 1, "seq": 3, "qos": 0, "backlog": True},
        {"t": t, "ev": "broker_acked", "dev": DEV, "boot": 2, "seq": 118},
        {"t": t, "ev": "ingest_acked", "dev": DEV, "boot": 2, "seq": 118},
        {"t": t, "ev": "evicted", "dev": DEV, "boot": 2, "seq": 3,
         "reason": "outbox-full:drop-oldest"},
    ]
    assert path.read_text().splitlines() == [compact(e) for e in expected]


def test_times_are_whole_microseconds_like_the_wire(tmp_path: Path) -> None:
    h = HistoryFile(tmp_path / "h.jsonl")
    cap = T0 + 1 / 3 + 7e-8
    h.generated(T0 + 2 / 3, DEV, 1, 0, cap)
    h.close()
    (event,) = read_jsonl(tmp_path / "h.jsonl")
    wire = decode_reading(encode_reading(Reading(
        device_id=DEV, boot_epoch=1, seq=0, captured_at=cap, sample_rate_hz=250, gain_uv=2.5,
        samples=EcgStream.for_profile(PROFILE, SyntheticSource(250, 0)).next_chunk(10))))
    assert event["cap"] == wire.captured_at  # the checker can join on it exactly
    assert event["t"] == round((T0 + 2 / 3) * 1e6) / 1e6


def test_one_write_per_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = HistoryFile(tmp_path / "h.jsonl")
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    for seq in range(1000):
        h.generated(T0, DEV, 1, seq, T0 + seq)
    assert h.pending == 1000
    h.flush()
    assert len(writes) == 1 and h.written == 1000
    h.close()


def test_a_torn_last_line_is_closed_before_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(compact({"t": T0, "ev": "boot", "dev": DEV, "boot": 1, "next_seq": 0})
                    + '\n{"t":1700000000.5,"ev":"gen')  # a kill -9 in the middle of a write
    h = HistoryFile(path)
    h.boot(T0 + 9, DEV, 2, 5)
    h.close()
    assert [(e["ev"], e["boot"]) for e in read_jsonl(path)] == [("boot", 1), ("boot", 2)]


def test_no_history_records_nothing() -> None:
    h = NoHistory()
    h.boot(T0, DEV, 1, 0)
    h.generated(T0, DEV, 1, 0, T0)
    assert h.flush() == 0
    h.close()


# --- the device's events, per delivery mode ------------------------------------------


class Rig:
    """One device with its outbox and a history, ticking as the fleet does."""

    def __init__(self, tmp_path: Path, delivery: str, *, clock: ManualClock | None = None,
                 capacity: int = 100, policy: str = "drop-oldest", **kw: Any) -> None:
        self.path = tmp_path / "outbox.sqlite"
        self.history_path = tmp_path / "history" / "devices.jsonl"
        self.clock = clock or ManualClock(start=T0)
        self.outbox = Outbox(self.path, capacity=capacity, policy=policy)
        self.history = HistoryFile(self.history_path)
        config = DeviceConfig(delivery=Delivery(delivery), chunk_seconds=1.0, sample_rate=50,
                              **kw)
        self.pub = FakePublisher()
        self.device = Device(DEV, PROFILE, EcgStream.for_profile(PROFILE, SyntheticSource(50, 0)),
                             self.outbox, self.pub, self.clock, config, history=self.history)
        self.history.flush()
        self.outbox.commit()

    def tick(self, seconds: float = 0.0) -> None:
        """What the fleet does: generate, flush, commit, publish, flush."""
        self.clock.advance(seconds)
        self.device.generate()
        self.history.flush()
        self.outbox.commit()
        self.device.pump()
        self.history.flush()

    def settle(self) -> None:
        """Routed events are flushed and committed by the fleet's next tick."""
        self.history.flush()
        self.outbox.commit()

    def events(self) -> list[dict[str, Any]]:
        return read_jsonl(self.history_path)

    def per_reading(self) -> dict[tuple[int, int], list[str]]:
        out: dict[tuple[int, int], list[str]] = {}
        for e in self.events():
            if e["ev"] not in ("boot", "truth"):
                out.setdefault((e["boot"], e["seq"]), []).append(e["ev"])
        return out

    def close(self) -> None:
        self.history.close()
        self.outbox.close()


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for r in made:
        r.close()


def test_fire_and_forget_events(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = Rig(tmp_path, "fire-and-forget")
    rigs.append(rig)
    rig.tick(2.0)  # offline: generated, not published
    rig.device.on_connected()
    rig.tick(1.0)
    events = rig.events()
    assert events[0] == {"t": T0, "ev": "boot", "dev": DEV, "boot": 1, "next_seq": 0}
    assert rig.per_reading() == {(1, s): ["generated", "published"] for s in range(3)}
    pubs = [e for e in events if e["ev"] == "published"]
    assert [(e["seq"], e["qos"], e["backlog"]) for e in pubs] == [
        (0, 0, True), (1, 0, True), (2, 0, True)]  # seq 2 waited behind the backlog
    rig.tick(1.0)
    assert rig.events()[-1]["ev"] == "published" and rig.events()[-1]["backlog"] is False
    gen = [e for e in events if e["ev"] == "generated"]
    assert [(e["seq"], e["cap"], e["t"]) for e in gen] == [
        (0, T0, T0 + 2), (1, T0 + 1, T0 + 2), (2, T0 + 2, T0 + 3)]


def test_broker_ack_events_and_a_failed_puback(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = Rig(tmp_path, "broker-ack", ack_timeout=5.0)
    rigs.append(rig)
    rig.device.on_connected()
    rig.tick(2.0)
    mids = rig.pub.mids()
    rig.device.on_puback(mids[0])
    rig.device.on_puback(mids[1], ok=False)  # a failure reason code: no broker_acked
    rig.device.on_puback(mids[0])  # a duplicate PUBACK of a forgotten mid: nothing
    rig.settle()
    assert rig.per_reading() == {(1, 0): ["generated", "published", "broker_acked"],
                                 (1, 1): ["generated", "published"]}
    rig.tick(5.0)  # seq 1 is sent again after the timeout
    rig.device.on_puback(rig.pub.mids()[1])
    rig.settle()
    assert rig.per_reading()[(1, 1)] == ["generated", "published", "published", "broker_acked"]
    resend = [e for e in rig.events() if e["ev"] == "published" and e["seq"] == 1][1]
    assert resend["backlog"] is True and resend["qos"] == 1
    assert rig.device.stats.resent == 1


def test_end_to_end_events_ingest_acked_once_per_seq(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = Rig(tmp_path, "end-to-end", ack_timeout=50.0)
    rigs.append(rig)
    rig.device.on_connected(session_present=True)
    rig.tick(3.0)
    for mid in rig.pub.mids().values():
        rig.device.on_puback(mid)
    assert rig.device.on_ack([(2, 2)]) == 1  # 0 and 1 went out before 2: a gap, sent again
    rig.tick(5.0)  # 0, 1 re-sent, 3..7 new
    assert rig.device.on_ack([(0, 1)]) == 2
    assert rig.device.on_ack([(0, 2)]) == 0  # all gone already
    rig.settle()
    per = rig.per_reading()
    assert per[(1, 0)] == ["generated", "published", "broker_acked", "published",
                           "ingest_acked"]
    assert per[(1, 2)] == ["generated", "published", "broker_acked", "ingest_acked"]
    resends = [e for e in rig.events() if e["ev"] == "published" and "resend" in e]
    assert [(e["seq"], e["resend"], e["backlog"]) for e in resends] == [(0, "gap", True), (1, "gap", True)]
    assert all(evs.count("ingest_acked") == 0 for (b, s), evs in per.items() if s > 2)
    assert {s for (_, s), evs in per.items() if "ingest_acked" not in evs} == \
        ledger_sets(rig.path)[DEV]["buffered"]


@pytest.mark.parametrize("policy", ["drop-oldest", "reject-new"])
def test_evicted_events_match_the_evictions_table(tmp_path: Path, rigs: list[Rig],
                                                   policy: str) -> None:
    rig = Rig(tmp_path, "end-to-end", capacity=3, policy=policy)
    rigs.append(rig)
    rig.tick(4.0)
    rig.tick(3.0)
    evicted = [e for e in rig.events() if e["ev"] == "evicted"]
    db = sqlite3.connect(rig.path)
    table = db.execute("SELECT device_id, boot_epoch, seq, reason, evicted_at FROM evictions"
                       " ORDER BY seq").fetchall()
    db.close()
    assert [(e["dev"], e["boot"], e["seq"], e["reason"], e["t"]) for e in evicted] == table
    assert len(table) == 4
    reason = REASON_DROP_OLDEST if policy == "drop-oldest" else REASON_REJECT_NEW
    assert {e["reason"] for e in evicted} == {reason}
    # every generated seq is buffered or evicted, and both sources agree on which
    sets = ledger_sets(rig.path)[DEV]
    assert set(sets["evicted"]) == {e["seq"] for e in evicted}
    assert sets["buffered"] | set(sets["evicted"]) == set(range(7))


def test_crash_after_the_history_flush_before_the_commit(tmp_path: Path) -> None:
    """kill -9 between the flush and the commit: the `generated` lines exist, the seqs do
    not; the next boot reuses those seqs under its own boot epoch."""
    rig = Rig(tmp_path, "end-to-end")
    rig.tick(3.0)  # seqs 0..2 committed
    rig.clock.advance(2.0)
    assert rig.device.generate() == 2  # seqs 3 and 4
    rig.history.flush()  # the fleet flushes ...
    rig.outbox._db.close()  # ... and dies before the commit (the transaction rolls back)
    os.close(rig.history._fd)  # the process is gone; what was flushed is in the file

    box = Outbox(rig.path)
    history = HistoryFile(rig.history_path)
    clock = ManualClock(start=T0 + 60)
    config = DeviceConfig(delivery=Delivery.END_TO_END, chunk_seconds=1.0, sample_rate=50)
    device = Device(DEV, PROFILE, EcgStream.for_profile(PROFILE, SyntheticSource(50, 0)), box,
                    FakePublisher(), clock, config, history=history)
    assert (device.boot_epoch, device.next_seq) == (2, 3)  # seqs 3 and 4 are free again
    clock.advance(2.0)
    device.generate()
    history.flush()
    box.commit()
    history.close()
    box.close()

    events = read_jsonl(rig.history_path)
    boots = [(e["boot"], e["next_seq"]) for e in events if e["ev"] == "boot"]
    assert boots == [(1, 0), (2, 3)]
    generated = [(e["boot"], e["seq"]) for e in events if e["ev"] == "generated"]
    assert generated == [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4)]
    assert len(set(generated)) == len(generated)  # no key twice
    db = sqlite3.connect(rig.path)
    rows = db.execute("SELECT boot_epoch, seq FROM outbox ORDER BY seq").fetchall()
    db.close()
    # (hc-0001, 1, 3) and (1, 4) were generated but never reached the outbox: the checker's
    # "device crash before persisting"; (2, 3) and (2, 4) are the durable ones
    assert rows == [(1, 0), (1, 1), (1, 2), (2, 3), (2, 4)]


def test_a_backlog_row_of_an_earlier_boot_keeps_its_boot_epoch(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "end-to-end")
    rig.tick(2.0)  # boot 1: seqs 0, 1, never sent
    rig.close()
    rig2 = Rig(tmp_path, "end-to-end", clock=ManualClock(start=T0 + 100))
    rig2.device.on_connected()
    rig2.tick(1.0)
    assert rig2.device.on_ack([(0, 2)]) == 3
    rig2.settle()
    rig2.close()
    events = [e for e in rig2.events() if e["ev"] in ("published", "ingest_acked")]
    assert [(e["ev"], e["boot"], e["seq"]) for e in events] == [
        ("published", 1, 0), ("published", 1, 1), ("published", 2, 2),
        ("ingest_acked", 1, 0), ("ingest_acked", 1, 1), ("ingest_acked", 2, 2)]


@pytest.mark.parametrize("history", [True, False])
def test_the_fleet_writes_its_history_only_when_asked(tmp_path: Path, history: bool) -> None:
    """start() and shutdown() need no broker: the links never get to connect."""
    cfg = FleetConfig(state_dir=tmp_path, host="127.0.0.1", port=free_port(), devices=2,
                      delivery="broker-ack", ecg_source="synthetic", history=history)
    fleet = Fleet(cfg, out=io.StringIO())
    fleet.start()
    fleet.shutdown()
    assert cfg.history_path.exists() is history
    if history:
        boots = read_jsonl(cfg.history_path)
        assert [(e["ev"], e["dev"], e["boot"], e["next_seq"]) for e in boots] == [
            ("boot", "hc-0000", 1, 0), ("boot", "hc-0001", 1, 0)]


def test_truth_lines_have_the_checker_format(tmp_path: Path) -> None:
    path = tmp_path / "devices.jsonl"
    h = HistoryFile(path)
    h.truth(T0 + 1, DEV, "rhythm", "af", T0 + 0.5, None, False, 88.25)
    h.truth(T0 + 2, DEV, "artifact", "lead-off", T0 + 1.25, T0 + 31.25, True)
    h.close()
    lines = path.read_text().splitlines()
    assert lines[0] == (f'{{"t":{T0 + 1!r},"ev":"truth","dev":"{DEV}","kind":"rhythm","label":"af",'
                        f'"start":{T0 + 0.5!r},"end":null,"episode":false,"hr_bpm":88.25}}')
    assert read_jsonl(path)[1] == {"t": T0 + 2, "ev": "truth", "dev": DEV, "kind": "artifact",
                                   "label": "lead-off", "start": T0 + 1.25, "end": T0 + 31.25,
                                   "episode": True}
    NoHistory().truth(T0, DEV, "rhythm", "sinus", T0, None, False)  # records nothing, no error
