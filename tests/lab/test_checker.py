"""The checker on hand-written histories: every outcome, every loss cause, every measure."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.checker import (
    CAUSES,
    CRASH,
    OVERFLOW,
    QOS0,
    RESTART,
    SNAPSHOT,
    UNEXPLAINED,
    CheckResult,
    Expectation,
    ExpectationError,
    check,
    infer_delivery,
    parse_expectation,
    quantiles,
    verdict,
)
from lab.errors import LabError
from lab.history import (
    Boot,
    BrokerAcked,
    BrokerSample,
    DeviceEvent,
    Duplicate,
    Evicted,
    FaultWindow,
    Generated,
    History,
    IngestAcked,
    Published,
    QuarantinedMessage,
    Stored,
)


class H:
    """A history written by hand, one call per event, in order."""

    def __init__(self, delivery: str | None = None) -> None:
        self.delivery = delivery
        self.dev: list[DeviceEvent] = []
        self.stored: list[Stored] = []
        self.dups: list[Duplicate] = []
        self.quarantined: list[QuarantinedMessage] = []
        self.faults: list[FaultWindow] = []
        self.samples: list[BrokerSample] = []

    def boot(self, t: float, boot: int, next_seq: int, dev: str = "a") -> H:
        self.dev.append(Boot(t, dev, boot, next_seq))
        return self

    def gen(self, t: float, seq: int, dev: str = "a", boot: int = 1, cap: float | None = None) -> H:
        self.dev.append(Generated(t, dev, boot, seq, t - 1.0 if cap is None else cap))
        return self

    def pub(self, t: float, seq: int, qos: int = 1, dev: str = "a", boot: int = 1,
            resend: str | None = None) -> H:
        self.dev.append(Published(t, dev, boot, seq, qos, resend is not None, resend))
        return self

    def back(self, t: float, seq: int, dev: str = "a", boot: int = 1) -> H:
        self.dev.append(BrokerAcked(t, dev, boot, seq))
        return self

    def iack(self, t: float, seq: int, dev: str = "a", boot: int = 1) -> H:
        self.dev.append(IngestAcked(t, dev, boot, seq))
        return self

    def evict(self, t: float, seq: int, reason: str = "outbox-full:drop-oldest", dev: str = "a",
              boot: int = 1) -> H:
        self.dev.append(Evicted(t, dev, boot, seq, reason))
        return self

    def store(self, t: float, seq: int, dev: str = "a", boot: int = 1, cap: float | None = None,
              duration: float = 1.0, backlog: bool = False, received: float | None = None) -> H:
        self.stored.append(Stored(t, dev, boot, seq, t - 2.0 if cap is None else cap,
                                  t if received is None else received, duration, backlog))
        return self

    def dup(self, t: float, seq: int, dev: str = "a", boot: int = 1) -> H:
        self.dups.append(Duplicate(t, dev, boot, seq))
        return self

    def fault(self, wid: str, fault: str, target: str, start: float, end: float | None,
              persistence: bool | None = None) -> H:
        self.faults.append(FaultWindow(wid, fault, target, start, end, persistence))
        return self

    def sample(self, t: float, stored: float | None = None, dropped: float | None = None,
               inc: int = 0, retained: float | None = None) -> H:
        self.samples.append(BrokerSample(t, inc, stored, dropped, retained))
        return self

    def history(self, **kw: Any) -> History:
        return History(device_events=self.dev, stored=self.stored, duplicates=self.dups,
                       quarantined=self.quarantined, faults=self.faults, broker=self.samples,
                       delivery=self.delivery, **kw)

    def check(self, **kw: Any) -> CheckResult:
        grace = kw.pop("grace_s", 1.0)
        expect = kw.pop("expect", None)
        max_lag = kw.pop("max_lag_s", None)
        return check(self.history(**kw), expect, grace_s=grace, max_lag_s=max_lag)


def outcome(r: CheckResult, seq: int, dev: str = "a", boot: int = 1) -> tuple[Any, ...]:
    o = r.outcomes[(dev, boot, seq)]
    return (o.outcome, o.cause or o.reason, o.window)


def assert_identity(r: CheckResult) -> None:
    assert r.balanced()
    t = r.totals
    assert t.generated == t.stored + t.buffered + t.evicted + t.lost
    assert sum(t.lost_by_cause.values()) == t.lost
    assert t.committed == t.generated - t.lost_by_cause.get(CRASH, 0)
    assert len(r.uncommitted) == t.lost_by_cause.get(CRASH, 0)
    json.dumps(r.as_dict(), allow_nan=False)


# --- outcomes -------------------------------------------------------------------------------


def test_stored_duplicated_and_unexpected() -> None:
    h = H("broker-ack")
    h.gen(1, 0).pub(1, 0).back(1.1, 0).gen(2, 1).pub(2, 1).back(2.1, 1)
    h.store(1.2, 0).store(2.2, 1).dup(3, 1).dup(4, 1)
    h.store(5, 9)  # never generated
    r = h.check()
    assert outcome(r, 0) == ("stored", None, None)
    assert r.outcomes[("a", 1, 1)].duplicates == 2
    t = r.totals
    assert (t.generated, t.stored, t.duplicated, t.duplicates, t.unexpected) == (2, 2, 1, 2, 1)
    assert r.unexpected == (("a", 1, 9),)
    assert t.recovered == 0
    assert_identity(r)


def test_recovered_broker_ack_without_puback() -> None:
    h = H("broker-ack").gen(1, 0).pub(1, 0).store(2, 0)  # PUBACK never reached the device
    h.gen(3, 1).pub(3, 1).back(3.1, 1).store(3.2, 1)
    r = h.check()
    assert r.outcomes[("a", 1, 0)].recovered and not r.outcomes[("a", 1, 1)].recovered
    assert r.totals.recovered == 1


def test_recovered_end_to_end_without_ingest_ack() -> None:
    h = H("end-to-end").gen(1, 0).pub(1, 0).back(1.1, 0).store(1.2, 0)  # broker ack is not enough
    h.gen(2, 1).pub(2, 1).back(2.1, 1).store(2.2, 1).iack(2.3, 1)
    r = h.check()
    assert r.outcomes[("a", 1, 0)].recovered and not r.outcomes[("a", 1, 1)].recovered


def test_fire_and_forget_recovers_nothing() -> None:
    r = H("fire-and-forget").gen(1, 0).pub(1, 0, qos=0).store(2, 0).check()
    assert r.totals.recovered == 0 and r.totals.stored == 1


def test_buffered_from_the_final_snapshot() -> None:
    h = H("end-to-end").gen(1, 0).pub(1, 0).back(1.1, 0).gen(2, 1)
    r = h.check(final_buffered={"a": {0, 1}}, final_evicted={"a": {}}, final_next_seq={"a": 2})
    assert outcome(r, 0)[0] == "buffered" and outcome(r, 1)[0] == "buffered"
    assert r.totals.buffered == 2 and r.totals.lost == 0
    assert_identity(r)


def test_buffered_reconstructed_without_a_snapshot() -> None:
    # end-to-end: broker_acked is not a release; no ingest_acked → still in the outbox
    r = H("end-to-end").gen(1, 0).pub(1, 0).back(1.1, 0).gen(2, 1).check()
    assert r.totals.buffered == 2
    # broker-ack: broker_acked releases it; never stored → lost
    r = H("broker-ack").gen(1, 0).pub(1, 0).back(1.1, 0).check()
    assert r.totals.buffered == 0 and r.totals.lost == 1


def test_snapshot_says_gone_although_no_release_event() -> None:
    r = H("end-to-end").gen(1, 0).pub(1, 0).check(final_buffered={"a": set()}, final_next_seq={"a": 1})
    assert outcome(r, 0) == ("lost", UNEXPLAINED, None)


def test_evicted_with_reason_from_event_and_from_snapshot() -> None:
    h = H("end-to-end").gen(1, 0).gen(2, 1).evict(3, 0, "outbox-full:drop-oldest").gen(4, 2)
    r = h.check(final_buffered={"a": {1}}, final_evicted={"a": {0: "outbox-full:drop-oldest",
                                                                 2: "outbox-full:reject-new"}})
    assert outcome(r, 0) == ("evicted", "outbox-full:drop-oldest", None)
    assert outcome(r, 2) == ("evicted", "outbox-full:reject-new", None)
    assert r.totals.evicted_by_reason == {"outbox-full:drop-oldest": 1, "outbox-full:reject-new": 1}
    assert_identity(r)


def test_stored_wins_over_buffered_and_evicted() -> None:
    h = H("end-to-end").gen(1, 0).pub(1, 0).evict(2, 0).store(3, 0).gen(4, 1).pub(4, 1).store(5, 1)
    r = h.check(final_buffered={"a": {1}})
    assert outcome(r, 0)[0] == "stored" and outcome(r, 1)[0] == "stored"
    assert r.totals.buffered == 0 and r.totals.evicted == 0


# --- loss causes ----------------------------------------------------------------------------


def test_broker_queue_overflow_needs_a_drop_after_the_ack() -> None:
    h = H("broker-ack").sample(0, stored=0, dropped=0)
    h.gen(1, 0).pub(1, 0).back(1.1, 0)  # dropped counter rises at t=5: overflow
    h.sample(5, dropped=3)
    h.gen(10, 1).pub(10, 1).back(10.1, 1)  # no drop after t=10.1: unexplained
    r = h.check()
    assert outcome(r, 0)[:2] == ("lost", OVERFLOW)
    assert outcome(r, 1)[:2] == ("lost", UNEXPLAINED)
    assert r.broker_dropped == 3
    assert_identity(r)


def test_dropped_counter_is_summed_across_incarnations() -> None:
    h = H("broker-ack").sample(1, dropped=5).sample(2, dropped=40).sample(3, dropped=0, inc=1)
    h.sample(4, dropped=7, inc=1)
    h.gen(3.5, 0).pub(3.5, 0).back(3.6, 0)  # the new incarnation's rise at t=4 counts
    r = h.check()
    assert r.broker_dropped == 47
    assert outcome(r, 0)[:2] == ("lost", OVERFLOW)


@pytest.mark.parametrize(("fault", "persistence", "stack", "expected"), [
    ("kill", False, None, RESTART),
    ("term", None, False, RESTART),  # the window does not say: stack.json does
    ("restart-no-persistence", None, None, RESTART),
    ("kill", True, None, SNAPSHOT),  # a persistent broker killed -9: lost since the last snapshot
    ("kill", None, True, SNAPSHOT),
    ("term", True, None, UNEXPLAINED),  # a clean stop saves the snapshot: not a broker cause
    ("kill", None, None, UNEXPLAINED),  # nobody says: not this cause
    ("stop", False, None, UNEXPLAINED),  # SIGSTOP loses nothing
])
def test_broker_restart_without_persistence(fault: str, persistence: bool | None,
                                            stack: bool | None, expected: str) -> None:
    h = H("broker-ack").gen(1, 0).pub(1, 0).back(1.1, 0).fault("bounce", fault, "broker", 5, 8, persistence)
    r = h.check(broker_persistence=stack)
    assert outcome(r, 0)[:2] == ("lost", expected)
    if expected == SNAPSHOT:
        assert outcome(r, 0)[2] == "bounce"  # the crash's window


def test_a_persistent_broker_killed_before_the_ack_is_not_the_cause() -> None:
    h = H("broker-ack").fault("crash", "kill", "broker", 1, 2, True).store(4, 99, received=4)
    h.gen(5, 0).pub(5, 0).back(5.1, 0)
    assert outcome(h.check(), 0)[:2] == ("lost", UNEXPLAINED)


def test_restart_before_the_ack_is_not_the_cause_once_ingest_receives_again() -> None:
    h = H("broker-ack").fault("bounce", "kill", "broker", 1, 2, False).store(4, 99, received=4)
    h.gen(5, 0).pub(5, 0).back(5.1, 0)
    assert outcome(h.check(), 0)[:2] == ("lost", UNEXPLAINED)


def test_acked_after_a_restart_before_the_subscriber_is_back() -> None:
    # the restart took the ingest session: PUBACKed readings with no subscriber are discarded
    h = H("broker-ack").fault("bounce", "term", "broker", 1, 2, False)
    h.gen(3, 0).pub(3, 0).back(3.1, 0)  # after the restart, before ingest receives again
    h.store(6, 99, received=6)  # ingest is back
    h.gen(7, 1).pub(7, 1).back(7.1, 1)
    r = h.check()
    assert outcome(r, 0) == ("lost", RESTART, "bounce")
    assert outcome(r, 1) == ("lost", UNEXPLAINED, None)


def test_overflow_before_the_restart_wins_and_after_it_does_not() -> None:
    h = H("broker-ack").sample(0, dropped=0)
    h.gen(1, 0).pub(1, 0).back(1.1, 0)
    h.sample(3, dropped=2)  # dropped at t=3, before the restart at t=5: overflow
    h.fault("bounce", "kill", "broker", 5, 6, False)
    r = h.check()
    assert outcome(r, 0)[:2] == ("lost", OVERFLOW)

    h = H("broker-ack").sample(0, dropped=0)
    h.gen(1, 0).pub(1, 0).back(1.1, 0)
    h.fault("bounce", "kill", "broker", 5, 6, False)
    h.sample(7, dropped=2, inc=1)  # a drop only after the restart: the restart took it
    assert outcome(h.check(), 0)[:2] == ("lost", RESTART)


def test_end_to_end_readings_let_go_without_ack_are_unexplained_even_with_drops() -> None:
    h = H("end-to-end").gen(1, 0).pub(1, 0).back(1.1, 0).sample(2, dropped=5)
    r = h.check(final_buffered={"a": set()})
    assert outcome(r, 0)[:2] == ("lost", UNEXPLAINED)


def test_qos0_while_a_link_is_down_and_until_it_is_restored() -> None:
    h = H("fire-and-forget").fault("cut", "cut", "ingest", 10, 20)
    for seq, t in enumerate([5, 9.5, 12, 22, 30]):
        h.gen(t, seq).pub(t, seq, qos=0)
    h.store(25, 99, received=25)  # a later reading arrives at 25: the path works again
    r = h.check()
    assert outcome(r, 0) == ("lost", UNEXPLAINED, None)  # long before the fault
    assert outcome(r, 1) == ("lost", QOS0, "cut")  # in flight when it hit (grace 1 s)
    assert outcome(r, 2) == ("lost", QOS0, "cut")
    assert outcome(r, 3) == ("lost", QOS0, "cut")  # healed, but the subscriber not back yet
    assert outcome(r, 4) == ("lost", UNEXPLAINED, None)  # after the path was restored
    assert r.window("cut").restored_at == 25
    assert r.window("cut").lost == 3
    assert outcome(h.check(grace_s=0.0), 1) == ("lost", UNEXPLAINED, None)


@pytest.mark.parametrize(("fault", "target"), [("blackhole", "devices"), ("kill", "ingest"),
                                               ("stop", "broker"), ("flap", "ingest")])
def test_qos0_any_fault_on_the_path(fault: str, target: str) -> None:
    h = H("fire-and-forget").fault("f", fault, target, 10, None).gen(12, 0).pub(12, 0, qos=0)
    assert outcome(h.check(), 0) == ("lost", QOS0, "f")


def test_qos1_publish_without_ack_and_not_buffered_is_unexplained() -> None:
    h = H("broker-ack").fault("cut", "cut", "ingest", 0, 100).gen(1, 0).pub(1, 0)
    r = h.check(final_buffered={"a": set()})
    assert outcome(r, 0) == ("lost", UNEXPLAINED, "cut")


def test_device_crash_before_persisting() -> None:
    h = H("end-to-end").boot(0, 1, 0)
    h.gen(1, 0).pub(1, 0).gen(2, 1)  # seq 1 generated, then kill -9 before its commit
    h.fault("reboot", "kill", "devices", 2.05, 3)
    h.boot(3, 2, 1)  # the next boot restores next_seq 1: seq 1 was never durable
    h.gen(4, 1, boot=2).pub(4, 1, boot=2).store(5, 1, boot=2)
    h.store(5, 0)
    r = h.check()
    assert outcome(r, 1, boot=1) == ("lost", CRASH, "reboot")
    assert outcome(r, 1, boot=2)[0] == "stored"
    assert r.uncommitted == (("a", 1, 1),)
    t = r.totals
    assert (t.generated, t.committed, t.stored, t.lost) == (3, 2, 2, 1)
    assert r.as_dict()["ledger"] == {"generated": 2, "lost": 0}  # what lab/ledger.py sees
    assert_identity(r)


def test_crash_needs_the_next_boot_to_have_skipped_the_seq() -> None:
    h = H("end-to-end").boot(0, 1, 0).gen(1, 0).gen(2, 1).boot(3, 2, 2)  # both were committed
    r = h.check(final_buffered={"a": {0, 1}})
    assert r.totals.buffered == 2 and r.totals.lost == 0


def test_crash_at_the_end_from_the_final_next_seq() -> None:
    h = H("end-to-end").boot(0, 1, 0).gen(1, 0).gen(2, 1)
    r = h.check(final_buffered={"a": {0}}, final_next_seq={"a": 1})
    assert outcome(r, 1) == ("lost", CRASH, None)
    assert r.totals.committed == 1


def test_crash_loss_tied_to_a_window_containing_generation_when_no_fleet_fault() -> None:
    h = H("end-to-end").fault("cut", "cut", "ingest", 0, 100).boot(0, 1, 0).gen(1, 0).boot(3, 2, 0)
    assert outcome(h.check(), 0) == ("lost", CRASH, "cut")


def test_loss_tied_to_latest_window_then_generation_time() -> None:
    h = H("broker-ack").fault("long", "cut", "ingest", 0, 100).fault("short", "kill", "ingest", 40, 50)
    h.fault("early", "cut", "devices", 200, 210)
    h.gen(45, 0).pub(45, 0).back(45.1, 0)  # inside both: the later-starting one
    h.gen(205, 1).pub(300, 1).back(300.1, 1)  # published outside every window: generation time
    h.gen(400, 2).pub(400, 2).back(400.1, 2)  # outside all windows
    h.store(101, 99, received=101).store(211, 98, received=211)
    r = h.check()
    assert outcome(r, 0)[2] == "short"
    assert outcome(r, 1)[2] == "early"
    assert outcome(r, 2)[2] is None
    loss = next(x for x in r.losses if x.key == ("a", 1, 1))
    assert loss.t == 205


# --- measures -------------------------------------------------------------------------------


def test_quantiles_match_linear_interpolation() -> None:
    q = quantiles([5, 1, 3, 2, 4])
    assert (q.n, q.p50, q.p90, q.p99, q.max) == (5, 3, 4.6, 4.96, 5)
    assert quantiles([]).p50 is None and quantiles([]).n == 0
    assert quantiles([7]).p99 == 7


def test_latency_from_capture_end_overall_and_for_backlog() -> None:
    h = H("end-to-end")
    for seq, (stored_at, backlog) in enumerate([(3.0, False), (4.0, False), (11.0, True), (21.0, True)]):
        h.gen(0, seq, cap=0.0).store(stored_at, seq, cap=0.0, duration=1.0, backlog=backlog)
    r = h.check()
    assert (r.latency.n, r.latency.max, r.latency.p50) == (4, 20.0, 6.5)
    assert (r.backlog_latency.n, r.backlog_latency.p50, r.backlog_latency.max) == (2, 15.0, 20.0)


def test_outbox_high_water_mark_per_mode_release() -> None:
    h = H("end-to-end")
    for seq in range(3):
        h.gen(seq, seq).pub(seq + 0.1, seq).back(seq + 0.2, seq)  # broker acks do not release
    h.gen(1.5, 0, dev="b")
    for seq in range(3):
        h.iack(10 + seq, seq).store(9.5, seq)
    r = h.check()
    assert (r.backlog.outbox_hwm, r.backlog.outbox_hwm_at) == (4, 2)
    assert (r.backlog.outbox_device_hwm, r.backlog.outbox_device_hwm_device) == (3, "a")
    # the same events in broker-ack mode: each PUBACK releases its reading at once
    r = check(History(device_events=h.dev, delivery="broker-ack"))
    assert r.backlog.outbox_hwm == 2  # a's one reading in flight, plus b's


def test_outbox_high_water_mark_skips_uncommitted_and_counts_evictions() -> None:
    h = H("end-to-end").boot(0, 1, 0).gen(1, 0).gen(2, 1).gen(3, 2).evict(4, 0).boot(5, 2, 2)
    h.gen(6, 2, boot=2)
    r = h.check()
    assert r.backlog.outbox_hwm == 2  # seq 2 of boot 1 never entered the outbox


def test_broker_queue_high_water_mark_above_its_first_sample() -> None:
    r = H().sample(0, stored=40).sample(1, stored=900).sample(2, stored=100).check()
    assert (r.backlog.broker_hwm, r.backlog.broker_hwm_at, r.backlog.broker_baseline) == (860, 1, 40)
    assert H().check().backlog.broker_hwm is None


def test_retained_statuses_are_not_broker_backlog() -> None:
    # 1,000 devices come online (1,000 retained statuses), then 300 readings queue up
    h = H().sample(0, stored=35, retained=40).sample(1, stored=1035, retained=1040)
    r = h.sample(2, stored=1335, retained=1040).sample(3, stored=1035, retained=1040).check()
    assert (r.backlog.broker_hwm, r.backlog.broker_hwm_at) == (300, 2)


def test_drain_after_each_fault() -> None:
    h = H("end-to-end").sample(0, stored=10)
    h.gen(1, 0).pub(1, 0)  # one reading in flight before the outage: the pre-fault level is 1
    h.fault("outage", "cut", "ingest", 5, 20).fault("later", "cut", "ingest", 50, 60)
    for seq in range(1, 6):
        h.gen(5 + seq, seq)
    h.sample(10, stored=300).sample(24, stored=50).sample(27, stored=10)
    for seq in range(5):
        h.iack(21 + seq, seq).store(20.5 + seq, seq)
    # seq 5 is never acked: it is the level before "later", and after it
    h.gen(55, 6).iack(56, 6).store(55.5, 6)
    r = h.check()
    w = r.window("outage")
    assert w.outbox_before == 1
    assert w.outbox_drain_s == 25 - 20  # 6 buffered at the end; back to 1 when seq 4 is acked
    assert (w.broker_before, w.broker_drain_s) == (10, 7)
    later = r.window("later")
    assert later.outbox_before == 1 and later.outbox_drain_s == 0.0
    assert r.metrics()["drain.max"] == 5


def test_drain_never_and_open_windows() -> None:
    h = H("end-to-end").fault("outage", "cut", "ingest", 5, 20).fault("open", "cut", "devices", 30, None)
    h.gen(6, 0).gen(7, 1)
    r = h.check()
    assert r.window("outage").outbox_drain_s is None
    assert r.window("open").outbox_drain_s is None and r.window("open").end is None
    assert math.isinf(r.metrics()["drain.max"])
    ok, lines = verdict(r, ["drain.max <= 600"])
    assert not ok and "never" in lines[0]


def test_reordered_at_ingest_in_store_order() -> None:
    h = H()
    for t, seq in enumerate([0, 1, 3, 2, 4, 1]):
        h.store(10 + t, seq)
    h.store(11.5, 0, dev="b").store(12.5, 1, dev="b")
    r = h.check()
    assert r.devices["a"].reordered == 2 and r.devices["b"].reordered == 0
    assert r.totals.reordered == 2


def test_quarantine_counted_per_device_and_in_total() -> None:
    h = H()
    h.quarantined += [QuarantinedMessage(1, "heartcheck/a/ecg", "bad-crc", "a"),
                      QuarantinedMessage(2, "junk", "topic")]
    r = h.check()
    assert r.devices["a"].quarantined == 1 and r.totals.quarantined == 2


def test_infer_delivery() -> None:
    assert infer_delivery(History(device_events=[IngestAcked(1, "a", 1, 0)])) == "end-to-end"
    assert infer_delivery(History(device_events=[Published(1, "a", 1, 0, 1)])) == "broker-ack"
    assert infer_delivery(History(device_events=[Published(1, "a", 1, 0, 0)])) == "fire-and-forget"
    assert infer_delivery(History(delivery="broker-ack")) == "broker-ack"


def test_empty_history() -> None:
    r = check(History())
    assert r.totals.generated == 0 and r.balanced() and r.windows == ()
    assert r.latency.n == 0
    json.dumps(r.as_dict(), allow_nan=False)


def test_as_dict_lists_are_cut_but_counts_are_whole() -> None:
    h = H("fire-and-forget")
    for seq in range(5):
        h.gen(seq, seq).pub(seq, seq, qos=0)
    d = h.check().as_dict(max_listed=2)
    assert len(d["losses"]) == 2 and d["losses_left_off"] == 3
    assert d["totals"]["lost"] == 5 and d["totals"]["lost_by_cause"][UNEXPLAINED] == 5
    assert d["devices"]["a"]["lost_ranges_by_cause"] == {UNEXPLAINED: [[0, 4]]}
    assert set(d["totals"]["lost_by_cause"]) == set(CAUSES)


# --- expectations and verdicts --------------------------------------------------------------


@pytest.mark.parametrize(("text", "metric", "op", "value"), [
    ("lost = 0", "lost", "=", 0), ("lost>0", "lost", ">", 0), (" lost <= 10 ", "lost", "<=", 10),
    ("stored >= 100", "stored", ">=", 100), ("cause.broker-queue-overflow > 0", f"cause.{OVERFLOW}", ">", 0),
    ("latency.p99 < 2.5", "latency.p99", "<", 2.5), ("evicted.outbox-full:drop-oldest != 3",
                                                     "evicted.outbox-full:drop-oldest", "!=", 3),
    ("window.outage.cause.qos0-link-down == 0", f"window.outage.cause.{QOS0}", "==", 0),
    ("hwm.broker <= 1e3", "hwm.broker", "<=", 1000),
])
def test_parse_expectation(text: str, metric: str, op: str, value: float) -> None:
    e = parse_expectation(text)
    assert (e.metric, e.op, e.value, e.text) == (metric, op, value, text.strip())


@pytest.mark.parametrize("text", ["lost", "lost == ", "lost >> 0", "lots = 0", "cause.gremlins > 0",
                                  "lost = zero", "lost = 0 and stored > 1", "", "window.x.y = 0",
                                  "latency.p42 < 1"])
def test_bad_expectations(text: str) -> None:
    with pytest.raises(ExpectationError) as info:
        parse_expectation(text)
    assert isinstance(info.value, LabError)


def test_bad_cause_names_the_causes() -> None:
    with pytest.raises(ExpectationError, match="broker-queue-overflow"):
        parse_expectation("cause.overflow > 0")


def test_expectation_object_validates_itself() -> None:
    with pytest.raises(ExpectationError):
        Expectation("lost", "~", 0)
    assert Expectation("lost", "=", 0).text == "lost = 0"


def test_verdict_lines_and_check_with_expectations() -> None:
    h = H("broker-ack").fault("outage", "cut", "ingest", 0, 10).sample(0, dropped=0)
    h.gen(1, 0).pub(1, 0).back(1.1, 0).sample(2, dropped=1).gen(3, 1).pub(3, 1).back(3.1, 1).store(4, 1)
    r = h.check(expect=["lost = 0", "cause.broker-queue-overflow > 0", "window.outage.lost = 1",
                        "window.nope.lost = 0", "evicted.outbox-full:reject-new = 0", "latency.p50 >= 0"])
    assert r.ok is False
    lines = r.verdict_lines
    assert lines[0].startswith("FAIL") and "lost = 1" in lines[0] and "broker-queue-overflow 1" in lines[0]
    assert [line[:4] for line in lines] == ["FAIL", "ok  ", "ok  ", "FAIL", "ok  ", "ok  "]
    assert "no fault window 'nope'" in lines[3]
    assert r.as_dict()["verdict"]["ok"] is False
    ok, _ = verdict(r, [parse_expectation("lost > 0")])
    assert ok
    assert check(h.history(), "lost = 1").ok is True


def test_undefined_measure_fails() -> None:
    ok, lines = verdict(check(History()), ["latency.p99 < 5", "hwm.broker = 0"])
    assert not ok and "undefined" in lines[0]


# --- the identity, on arbitrary histories ---------------------------------------------------


def _after_commit(draw: st.DrawFn, key: tuple[str, int, int], t: float, qos: int,
                  events: list[DeviceEvent], stored: list[Stored], dups: list[Duplicate]) -> float:
    """What happens to a committed reading after its commit, drawn; the time of the last step."""
    dev, boot, seq = key
    for step in draw(st.lists(st.sampled_from(["pub", "back", "iack", "evict", "store", "dup"]),
                              max_size=4)):
        t += 0.5
        if step == "pub":
            events.append(Published(t, dev, boot, seq, qos))
        elif step == "back":
            events.append(BrokerAcked(t, dev, boot, seq))
        elif step == "iack":
            events.append(IngestAcked(t, dev, boot, seq))
        elif step == "evict":
            events.append(Evicted(t, dev, boot, seq, draw(st.sampled_from(["r1", "r2"]))))
        elif step == "store":
            stored.append(Stored(t, dev, boot, seq, t - 2, t, 1.0, draw(st.booleans())))
        else:
            dups.append(Duplicate(t, dev, boot, seq))
    return t


@st.composite
def histories(draw: st.DrawFn) -> History:
    mode = draw(st.sampled_from(["fire-and-forget", "broker-ack", "end-to-end"]))
    qos = 0 if mode == "fire-and-forget" else 1
    events: list[DeviceEvent] = []
    stored: list[Stored] = []
    dups: list[Duplicate] = []
    t = 0.0
    for dev in draw(st.lists(st.sampled_from("abc"), min_size=1, max_size=3, unique=True)):
        next_seq = 0
        for boot in range(1, draw(st.integers(1, 3)) + 1):
            events.append(Boot(t, dev, boot, next_seq))
            for _ in range(draw(st.integers(0, 6))):
                seq = next_seq
                t += 1
                events.append(Generated(t, dev, boot, seq, t - 1))
                if draw(st.booleans()):  # crash before the commit: the next boot reuses seq
                    break
                next_seq += 1
                t = _after_commit(draw, (dev, boot, seq), t, qos, events, stored, dups)
    if draw(st.booleans()):
        stored.append(Stored(t + 1, "z", 1, 0, t, t + 1))  # unexpected
    faults = [FaultWindow(f"w{i}", draw(st.sampled_from(["cut", "kill", "blackhole"])),
                          draw(st.sampled_from(["ingest", "devices", "broker"])), s, s + d,
                          draw(st.none() | st.booleans()))
              for i, (s, d) in enumerate(draw(st.lists(st.tuples(st.floats(0, 40), st.floats(0, 10)),
                                                       max_size=3)))]
    samples = [BrokerSample(x, 0, None, float(i)) for i, x in enumerate(sorted(
        draw(st.lists(st.floats(0, 50), max_size=4))))]
    final = draw(st.none() | st.just("snapshot"))
    kw: dict[str, Any] = {}
    if final:
        devs = {e.dev for e in events}
        kw = {"final_buffered": {d: set(draw(st.sets(st.integers(0, 12)))) for d in devs},
              "final_evicted": {d: dict.fromkeys(draw(st.sets(st.integers(0, 12))), "snap") for d in devs}}
    return History(device_events=events, stored=stored, duplicates=dups, faults=faults,
                   broker=samples, delivery=mode, **kw)


@settings(max_examples=150, deadline=None)
@given(histories(), st.floats(0, 3))
def test_identity_holds_on_any_history(history: History, grace: float) -> None:
    r = check(history, grace_s=grace)
    assert_identity(r)
    generated = {e.key for e in history.device_events if isinstance(e, Generated)}
    assert set(r.outcomes) == generated
    for c in r.devices.values():
        assert c.generated == c.stored + c.buffered + c.evicted + c.lost
        assert c.duplicated <= c.stored and c.recovered <= c.stored
    assert {x.key for x in r.losses} == {k for k, o in r.outcomes.items() if o.outcome == "lost"}
    assert all(x.cause in CAUSES for x in r.losses)
    assert r.totals.unexpected == len(r.unexpected)
    assert r.backlog.outbox_hwm >= 0
    assert check(history, grace_s=grace).as_dict() == r.as_dict()  # pure: same in, same out


# --- what delivery cost -----------------------------------------------------------------------


def test_cost_counts_copies_reasons_and_where_duplicates_came_from() -> None:
    h = H("end-to-end")
    for seq in range(4):
        h.gen(float(seq), seq).pub(seq + 0.1, seq)
    h.pub(5.0, 1, resend="gap").pub(6.0, 2, resend="probe").pub(7.0, 2, resend="probe")
    for seq in range(4):
        h.store(8.0 + seq, seq).iack(8.5 + seq, seq)
    h.dup(9.5, 2).dup(9.6, 3)  # 2 was published three times; 3 once: the broker delivered it twice
    r = h.check()
    c = r.cost
    assert (c.sent, c.first, c.resent) == (7, 4, 3)
    assert c.amplification == 1.75 and c.sent_per_stored == 1.75
    assert c.resent_by_reason == {"gap": 1, "probe": 2}
    assert c.duplicates_by_origin == {"broker-redelivery": 1, "device-resend": 1}
    m = r.metrics()
    assert m["amplification"] == 1.75 and m["resent.probe"] == 2.0 and m["sent"] == 7.0
    ok, lines = verdict(r, ["amplification <= 1.2", "resent.no-puback = 0"])
    assert not ok and lines[0].startswith("FAIL") and lines[1].startswith("ok")
    assert_identity(r)


def test_the_broker_backlog_peak_is_set_beside_the_outboxes_at_that_moment() -> None:
    h = H("end-to-end")
    for seq in range(6):
        h.gen(float(seq), seq).pub(seq + 0.1, seq).back(seq + 0.2, seq)
    h.sample(0.0, stored=10.0).sample(3.5, stored=14.0).sample(5.5, stored=319.0)
    r = h.check()
    assert r.backlog.broker_hwm == 309.0 and r.backlog.broker_hwm_at == 5.5
    # 6 readings in the outboxes then: below the noise floor, the floor (100) is the yardstick
    assert r.cost.outbox_at_broker_hwm == 6.0 and r.cost.broker_over_outbox == 3.09
    assert r.metrics()["hwm.broker_over_outbox"] == 3.09


# --- fidelity -----------------------------------------------------------------------------------


def steady(h: H, seqs: range, delay: float) -> H:
    """Readings of 1 s captured at seq, generated at its end, stored `delay` later."""
    for seq in seqs:
        h.gen(seq + 1.0, seq, cap=float(seq)).pub(seq + 1.1, seq).back(seq + 1.2, seq)
        h.store(seq + 1.0 + delay, seq, cap=float(seq)).iack(seq + 1.1 + delay, seq)
    return h


def test_a_stack_that_keeps_up_is_faithful_and_without_a_bound_nothing_is_judged() -> None:
    h = steady(H("end-to-end"), range(20), delay=0.5)
    assert h.check().fidelity.faithful is None
    r = h.check(max_lag_s=5.0)
    f = r.fidelity
    assert f.faithful is True and f.lag_s == 0.5 and f.judged == 20 and f.reasons == ()
    assert r.metrics()["faithful"] == 1.0 and r.metrics()["fidelity.lag"] == 0.5


def test_falling_behind_outside_any_fault_is_not_faithful() -> None:
    h = steady(H("end-to-end"), range(10), delay=0.5)
    steady(h, range(10, 20), delay=60.0)  # no fault: the stack simply could not follow
    r = h.check(max_lag_s=5.0)
    f = r.fidelity
    assert f.faithful is False and f.lag_s == 60.0 and f.lag_at == 20.0 + 60.0
    assert "fell 60.0 s behind" in f.reasons[0] and f.speed_factor is not None
    assert f.speed_factor < 5.0 / 60.0 + 1e-9
    ok, lines = verdict(r, ["faithful = 1"])
    assert not ok and lines[0].startswith("FAIL")


def test_what_a_fault_delays_is_the_fault_s_doing_if_its_backlog_drains_in_time() -> None:
    h = steady(H("end-to-end"), range(10), delay=0.5)
    h.fault("cut", "cut", "ingest", 10.0, 40.0)
    for seq in range(10, 40):  # captured during the cut, stored after it within 5 s
        h.gen(seq + 1.0, seq, cap=float(seq)).pub(seq + 1.1, seq).back(seq + 1.2, seq)
    for i, seq in enumerate(range(10, 40)):
        h.store(40.0 + i * 0.1, seq, cap=float(seq)).iack(40.05 + i * 0.1, seq)
    steady(h, range(45, 60), delay=0.5)
    r = h.check(max_lag_s=5.0)
    assert r.fidelity.faithful is True, r.fidelity
    # the 30 captured in the cut and its drain are not judged, nor those that ended within
    # max_lag (5 s) before it began: they may have been on their way when it did
    assert r.fidelity.judged == 19


def test_a_backlog_that_never_drains_is_not_faithful() -> None:
    h = steady(H("end-to-end"), range(10), delay=0.5)
    h.fault("cut", "cut", "ingest", 10.0, 20.0)
    for seq in range(10, 30):  # generated, never stored: still in the outboxes at the end
        h.gen(seq + 1.0, seq, cap=float(seq)).pub(seq + 1.1, seq).back(seq + 1.2, seq)
    r = h.check(max_lag_s=5.0, final_buffered={"a": frozenset(range(10, 30))})
    f = r.fidelity
    assert f.faithful is False and any("never drained" in x for x in f.reasons), f
