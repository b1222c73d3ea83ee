"""The device state machine, with a fake publisher and a manual clock: no broker, no paho."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devices.device import Device, DeviceConfig
from devices.ecg_source import EcgStream, SyntheticSource
from devices.errors import ConfigError
from devices.outbox import REASON_DROP_OLDEST, REASON_REJECT_NEW, Outbox
from devices.outbox_view import buffered_readings, ledger_sets
from devices.profile import PatientProfile
from ecgcore.clock import ManualClock
from ecgcore.modes import Delivery
from wire import Reading, decode_reading

PROFILE = PatientProfile(hr_bpm=72, hrv=1.0, noise=0.01, seed=42)
T0 = 1_700_000_000.0


@dataclass
class FakePublisher:
    """Accepts publishes (or refuses them when `accept` is False) and remembers them."""

    accept: bool = True
    sent: list[tuple[str, Reading, int, int]] = field(default_factory=list)  # topic, r, qos, mid
    _mid: int = 0

    def publish(self, topic: str, payload: bytes, qos: int) -> int | None:
        if not self.accept:
            return None
        self._mid += 1
        self.sent.append((topic, decode_reading(payload), qos, self._mid))
        return self._mid

    def seqs(self) -> list[int]:
        return [r.seq for _, r, _, _ in self.sent]

    def mids(self) -> dict[int, int]:
        return {r.seq: mid for _, r, _, mid in self.sent}


@dataclass
class Rig:
    device: Device
    outbox: Outbox
    pub: FakePublisher
    clock: ManualClock
    path: Path

    def tick(self, seconds: float = 0.0) -> None:
        """Advance the clock, then what the fleet does each tick: generate, commit, pump."""
        self.clock.advance(seconds)
        self.device.generate()
        self.outbox.commit()
        self.device.pump()
        self.outbox.commit()

    def buffered(self) -> set[int]:
        return ledger_sets(self.path)[self.device.device_id]["buffered"]


def make_rig(tmp_path: Path, delivery: str, *, outbox: Outbox | None = None,
             clock: ManualClock | None = None, **kw: object) -> Rig:
    path = tmp_path / "outbox.sqlite"
    box = outbox or Outbox(path, capacity=int(kw.pop("capacity", 100)),  # type: ignore[call-overload]
                           policy=str(kw.pop("policy", "drop-oldest")))
    clock = clock or ManualClock(start=T0)
    config = DeviceConfig(delivery=Delivery(delivery), chunk_seconds=1.0, sample_rate=50, **kw)  # type: ignore[arg-type]
    stream = EcgStream.for_profile(PROFILE, SyntheticSource(50, 0))
    pub = FakePublisher()
    device = Device("hc-0001", PROFILE, stream, box, pub, clock, config)
    box.commit()
    return Rig(device, box, pub, clock, path)


def test_generation_follows_simulated_time_and_catches_up(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "broker-ack")
    rig.tick(0.99)
    assert rig.device.next_seq == 0
    rig.tick(2.5)  # 3.49 s: chunks 0, 1, 2 are complete
    assert rig.buffered() == {0, 1, 2}
    rig.tick(10.0)  # a late loop: 13.49 s
    assert rig.device.next_seq == 13
    rows = buffered_readings(rig.path, "hc-0001")
    assert [r["captured_at"] for r in rows] == [T0 + k for k in range(13)]
    assert all(r["boot_epoch"] == 1 and r["attempts"] == 0 for r in rows)
    assert rig.pub.sent == []  # never connected


def test_a_very_late_loop_skips_instead_of_flooding(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "broker-ack", max_catchup=5)
    rig.tick(100.5)
    assert rig.device.next_seq == 5 and rig.device.stats.skipped_chunks == 95
    rows = buffered_readings(rig.path, "hc-0001")
    assert [r["captured_at"] - T0 for r in rows] == [95, 96, 97, 98, 99]


def test_fire_and_forget_deletes_when_the_publish_is_accepted(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "fire-and-forget")
    rig.device.on_connected()
    rig.tick(1.0)
    assert rig.pub.seqs() == [0]
    _, reading, qos, _ = rig.pub.sent[0]
    assert qos == 0 and not reading.backlog and reading.samples.size == 50
    assert rig.buffered() == set()
    rig.pub.accept = False
    rig.tick(1.0)  # refused: the row stays
    assert rig.buffered() == {1}
    rig.pub.accept = True
    rig.tick(0.0)
    assert rig.buffered() == set() and rig.pub.seqs() == [0, 1]
    assert rig.pub.sent[1][1].backlog  # it waited, so it went out from the backlog


def test_broker_ack_deletes_at_the_puback(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "broker-ack")
    rig.device.on_connected()
    rig.tick(3.0)
    assert rig.pub.seqs() == [0, 1, 2]
    assert all(qos == 1 and not r.backlog for _, r, qos, _ in rig.pub.sent)
    assert rig.buffered() == {0, 1, 2}
    mids = rig.pub.mids()
    rig.device.on_puback(mids[1])
    rig.device.on_puback(999)  # unknown mid: ignored
    rig.outbox.commit()
    assert rig.buffered() == {0, 2}
    rows = {r["seq"]: r for r in buffered_readings(rig.path, "hc-0001")}
    assert rows[0]["attempts"] == 1 and rows[0]["last_sent_at"] is not None


def test_broker_ack_failed_puback_is_resent_after_the_timeout(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "broker-ack", ack_timeout=5.0)
    rig.device.on_connected()
    rig.tick(1.0)
    rig.device.on_puback(rig.pub.mids()[0], ok=False)
    rig.tick(4.5)
    assert rig.pub.seqs().count(0) == 1
    rig.tick(1.0)
    assert rig.pub.seqs().count(0) == 2 and rig.buffered() >= {0}


def puback_all(rig: Rig) -> None:
    for mid in rig.pub.mids().values():
        rig.device.on_puback(mid)


def test_end_to_end_waits_for_the_ack_and_never_resends_on_a_fixed_timer(tmp_path: Path) -> None:
    """The broker's PUBACK does not release a row; a silent ingest costs one probe copy (the
    newest reading) per backoff step, not the window every ack_timeout."""
    rig = make_rig(tmp_path, "end-to-end", ack_timeout=5.0, resend_cap=40.0, window=3, capacity=1000)
    rig.device.on_connected(session_present=True)
    rig.tick(1.0)
    rig.tick(1.0)
    puback_all(rig)
    rig.outbox.commit()
    assert rig.buffered() == {0, 1} and rig.pub.seqs() == [0, 1]
    for _ in range(60):  # 60 s of silence; the window (3) is full after seq 2
        rig.tick(1.0)
    seqs = rig.pub.seqs()
    assert seqs[:3] == [0, 1, 2] and set(seqs[3:]) == {2}  # only the newest goes again
    # probes after 5, 10, 20, 40 s of silence, each half fixed and half jitter: 3 to 5 in 60 s
    assert 3 <= len(seqs) - 3 <= 5, seqs
    assert rig.device.stats.resent_by_reason == {"probe": len(seqs) - 3}
    assert rig.pub.sent[3][1].backlog and not rig.pub.sent[0][1].backlog
    assert rig.device.on_ack([(0, 2)]) == 3  # released by the ingest service only
    rig.outbox.commit()
    assert rig.buffered() == set(range(3, 62))


def test_a_confirmation_of_a_later_reading_resends_the_earlier_ones_it_skipped(tmp_path: Path) -> None:
    """seq 3 confirmed while 0..2, published before it, are not: they arrived first or never."""
    rig = make_rig(tmp_path, "end-to-end", ack_timeout=50.0)
    rig.device.on_connected(session_present=True)
    for _ in range(5):
        rig.tick(1.0)
    puback_all(rig)
    assert rig.pub.seqs() == [0, 1, 2, 3, 4]
    assert rig.device.on_ack([(3, 3)]) == 1
    rig.tick(0.0)
    assert rig.pub.seqs()[5:] == [0, 1, 2] and rig.device.stats.resent_by_reason == {"gap": 3}
    assert rig.device.on_ack([(0, 2)]) == 3  # the copies arrive: no further re-send
    rig.tick(0.0)
    assert rig.pub.seqs()[8:] == [] and rig.device.in_flight == 1  # seq 4 waits: sent after 3


def test_a_gap_is_judged_by_the_first_copy_of_the_confirmed_reading(tmp_path: Path) -> None:
    """Which copy of a re-sent reading was confirmed is unknown: readings sent after its first
    copy may still be on their way, and are not re-sent."""
    rig = make_rig(tmp_path, "end-to-end", ack_timeout=50.0)
    rig.device.on_connected(session_present=True)
    rig.tick(1.0)
    rig.tick(1.0)  # 0, 1
    puback_all(rig)
    rig.device.on_disconnected()  # both PUBACKed: nothing to re-send on reconnect
    rig.device.on_connected(session_present=True)
    rig.tick(0.0)
    assert rig.pub.seqs() == [0, 1]
    assert rig.device.on_ack([(1, 1)]) == 1  # 0 was sent before 1's first copy: a gap
    rig.tick(1.0)  # 0 again, and 2 new
    assert rig.pub.seqs() == [0, 1, 0, 2]
    assert rig.device.on_ack([(0, 0)]) == 1  # (either copy)
    rig.tick(0.0)
    assert rig.pub.seqs() == [0, 1, 0, 2]  # 2 went out after 0's first copy: not a gap


def test_reconnect_resends_only_what_the_broker_did_not_puback_or_lost(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "end-to-end", ack_timeout=50.0)
    rig.device.on_connected(session_present=True)
    rig.tick(1.0)
    rig.tick(1.0)
    rig.tick(1.0)  # 0, 1, 2
    mids = rig.pub.mids()
    rig.device.on_puback(mids[0])
    rig.device.on_puback(mids[1])  # 2 has no PUBACK when the link drops
    rig.device.on_disconnected()
    rig.device.on_connected(session_present=True)
    rig.tick(0.0)
    assert rig.pub.seqs() == [0, 1, 2, 2] and rig.device.stats.resent_by_reason == {"no-puback": 1}
    puback_all(rig)
    rig.device.on_disconnected()
    rig.device.on_connected(session_present=False)  # the broker lost its state: all again
    rig.tick(0.0)
    assert rig.pub.seqs()[4:] == [0, 1, 2]
    assert rig.device.stats.resent_by_reason == {"no-puback": 1, "session-lost": 3}


def test_ingest_offline_holds_everything_and_a_new_ingest_session_resends(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "end-to-end", ack_timeout=50.0)
    rig.device.on_connected(session_present=True)
    rig.device.on_ingest_status(True, "s1")
    rig.tick(1.0)
    rig.tick(1.0)  # 0, 1
    puback_all(rig)
    rig.device.on_ingest_status(False, "s1")  # its Last Will: ingest is gone
    for _ in range(20):
        rig.tick(1.0)
    assert rig.pub.seqs() == [0, 1] and rig.device.paused and rig.device.wake_at() > rig.clock.monotonic()
    rig.device.on_ingest_status(True, "s1")  # back, same broker session: nothing was lost
    now = rig.clock.monotonic()
    resume = rig.device.resume_at  # every device of the fleet at its own moment of the spread
    assert now <= resume <= now + 50.0 and rig.device.wake_at() <= resume
    rig.tick(resume - now)
    # a small window: full, nothing new goes out. The probe timer restarted with ingest's return
    # (25-50 s, jittered) may have come before the resume moment (0-50 s): then one copy of the
    # newest reading in flight went out again, which is the probe's job
    sent = rig.pub.seqs()
    k = len(sent)
    assert sent[:2] == [0, 1] and sent[2:] in ([], [1]), sent
    assert rig.device.stats.resent_by_reason == ({"probe": 1} if k == 3 else {})
    assert rig.device.on_ack([(0, 1)]) == 2  # confirmations open it (slow start: 2 -> 4 -> 8)
    rig.tick(0.0)
    assert rig.pub.seqs()[k:] == [2, 3, 4, 5]
    assert rig.device.on_ack([(2, 5)]) == 4
    rig.tick(0.0)
    assert rig.pub.seqs()[k + 4:] == list(range(6, 14))
    rig.device.on_ingest_status(True, "s2")  # a new session: what the broker held is gone
    rig.tick(0.0)
    assert rig.pub.seqs()[k + 12:] == list(range(6, 14))
    assert rig.device.stats.resent_by_reason.get("ingest-session-lost") == 8


def test_with_several_ingest_workers_one_workers_will_does_not_hold_the_device(tmp_path: Path) -> None:
    """Ingest workers each keep a status on their own topic: ingest is online while any of
    them is, and one worker's new broker session re-sends what was in flight."""
    w1, w2 = "heartcheck/service/ingest/status/1", "heartcheck/service/ingest/status/2"
    rig = make_rig(tmp_path, "end-to-end", ack_timeout=50.0)
    rig.device.on_connected(session_present=True)
    rig.device.on_ingest_status(True, "a", w1)
    rig.device.on_ingest_status(True, "b", w2)  # first sight of another worker: nothing changes
    rig.tick(1.0)
    rig.tick(1.0)  # 0, 1
    assert rig.pub.seqs() == [0, 1] and rig.device.stats.resent == 0
    rig.device.on_ingest_status(False, "b", w2)  # worker 2's Last Will: worker 1 still runs
    assert rig.device.ingest_online and not rig.device.paused
    rig.device.on_ingest_status(True, "b", w2)  # back with its session: nothing was lost
    rig.tick(0.0)
    assert rig.device.stats.resent == 0
    rig.device.on_ingest_status(True, "c", w2)  # worker 2 came back without its session
    rig.tick(0.0)
    assert rig.device.stats.resent_by_reason == {"ingest-session-lost": 2}
    rig.device.on_ingest_status(False, "a", w1)
    rig.device.on_ingest_status(False, "c", w2)  # every worker gone: hold everything
    assert rig.device.ingest_online is False and rig.device.paused


def test_reconnect_resends_everything_unreleased_oldest_first(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "broker-ack")
    rig.device.on_connected()
    rig.tick(3.0)
    old_mids = rig.pub.mids()
    rig.device.on_disconnected()
    rig.tick(2.0)  # seqs 3 and 4 are generated while offline
    assert rig.pub.seqs() == [0, 1, 2]
    rig.device.on_puback(old_mids[0])  # a PUBACK of the old connection: mids were forgotten
    rig.device.on_connected()
    rig.tick(0.0)
    again = rig.pub.sent[3:]
    assert [r.seq for _, r, _, _ in again] == [0, 1, 2, 3, 4]
    assert all(r.backlog for _, r, _, _ in again)
    assert rig.buffered() == {0, 1, 2, 3, 4}


def test_live_only_when_nothing_older_waits(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "fire-and-forget", window=2)
    rig.tick(5.0)  # five readings while offline
    rig.device.on_connected()
    rig.tick(1.0)  # the window lets two backlog readings out; the new one must wait
    assert rig.pub.seqs() == [0, 1]
    rig.tick(0.0)
    rig.tick(0.0)
    assert rig.pub.seqs() == [0, 1, 2, 3, 4, 5]
    assert all(r.backlog for _, r, _, _ in rig.pub.sent)
    rig.tick(1.0)  # caught up: live again
    assert rig.pub.sent[-1][1].seq == 6 and not rig.pub.sent[-1][1].backlog


def test_the_window_bounds_what_is_in_flight(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "end-to-end", window=3)
    rig.tick(10.0)
    rig.device.on_connected()
    rig.tick(0.0)
    assert rig.pub.seqs() == [0, 1, 2] and rig.device.in_flight == 3
    rig.device.on_ack([(0, 1)])
    rig.tick(0.0)
    assert rig.pub.seqs() == [0, 1, 2, 3, 4] and rig.device.in_flight == 3


@pytest.mark.parametrize(("policy", "buffered", "evicted"), [
    ("drop-oldest", {3, 4, 5}, {0: REASON_DROP_OLDEST, 1: REASON_DROP_OLDEST,
                                2: REASON_DROP_OLDEST}),
    ("reject-new", {0, 1, 2}, {3: REASON_REJECT_NEW, 4: REASON_REJECT_NEW,
                               5: REASON_REJECT_NEW}),
])
def test_a_full_outbox_evicts_by_policy(tmp_path: Path, policy: str, buffered: set[int],
                                        evicted: dict[int, str]) -> None:
    rig = make_rig(tmp_path, "end-to-end", capacity=3, policy=policy)
    rig.tick(6.0)
    sets = ledger_sets(rig.path)["hc-0001"]
    assert sets == {"generated": 6, "buffered": buffered, "evicted": evicted}
    assert rig.device.stats.evicted == 3
    rig.device.on_connected()
    rig.tick(0.0)
    assert rig.pub.seqs() == sorted(buffered)


def test_drop_oldest_forgets_an_evicted_reading_in_flight(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "end-to-end", capacity=2, ack_timeout=100.0)
    rig.device.on_connected()
    rig.tick(2.0)
    assert rig.device.in_flight == 2
    rig.tick(1.0)  # seq 2 evicts seq 0, which was in flight
    assert rig.device.in_flight == 2 and rig.buffered() == {1, 2}


def test_seq_continues_across_a_reboot(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    rig = make_rig(tmp_path, "broker-ack")
    rig.tick(4.0)
    rig.outbox.close()
    box = Outbox(path)
    rig2 = make_rig(tmp_path, "broker-ack", outbox=box,
                    clock=ManualClock(start=T0 + 100))
    assert (rig2.device.boot_epoch, rig2.device.next_seq) == (2, 4)
    rig2.device.on_connected()
    rig2.tick(1.0)  # seq 4 is new, but older readings wait: it goes out as backlog
    rig2.tick(1.0)  # seq 5: nothing older waits any more, so it goes out live
    sent = [(r.boot_epoch, r.seq, r.backlog) for _, r, _, _ in rig2.pub.sent]
    # the old rows keep their boot epoch; new readings continue the seq
    assert sent == [(1, 0, True), (1, 1, True), (1, 2, True), (1, 3, True),
                    (2, 4, True), (2, 5, False)]
    assert ledger_sets(path)["hc-0001"]["generated"] == 6


def test_device_config_validates() -> None:
    with pytest.raises(ConfigError):
        DeviceConfig(delivery=Delivery.BROKER_ACK, chunk_seconds=0)
    with pytest.raises(ConfigError):
        DeviceConfig(delivery=Delivery.BROKER_ACK, chunk_seconds=200, sample_rate=250)
    with pytest.raises(ConfigError):
        DeviceConfig(delivery=Delivery.BROKER_ACK, window=0)
    with pytest.raises(ValueError, match="at-most-once"):
        DeviceConfig(delivery="at-most-once")  # type: ignore[arg-type]
    assert Delivery("end-to-end").qos == 1 and Delivery.FIRE_AND_FORGET.qos == 0


def test_the_probe_wait_is_real_time_under_compression(tmp_path: Path) -> None:
    """At --speed 100, a 5-s ack timeout is 250..500 simulated seconds of silence before the
    first probe (a network round trip does not get faster with the recording's clock)."""
    rig = make_rig(tmp_path, "end-to-end", clock=ManualClock(start=T0, speed=100.0),
                   ack_timeout=5.0, window=1, capacity=1000)
    rig.device.on_connected(session_present=True)
    rig.tick(1.0)
    rig.tick(240.0)  # 241 simulated seconds: far beyond 5, within the first probe's wait
    assert rig.pub.seqs() == [0]
    rig.tick(260.0)  # 501 s after seq 0 went out
    assert rig.pub.seqs() == [0, 0]


def test_nothing_ending_after_record_until_is_recorded_but_the_outbox_still_drains(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "broker-ack", record_until=T0 + 5.5)
    rig.tick(10.0)  # chunks [0, 1) .. [4, 5) end by 5.5 s; [5, 6) does not
    assert rig.device.stats.generated == 5 and rig.device.next_due <= rig.clock.monotonic()
    assert rig.device.wake_at() == math.inf  # nothing more to record, nothing to send
    rig.device.on_connected()
    rig.tick(100.0)
    assert rig.pub.seqs() == [0, 1, 2, 3, 4] and rig.device.stats.generated == 5
