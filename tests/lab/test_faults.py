"""The fault model without a network: LinkFault, effect_at, FaultTracker and one direction's Flow."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecgcore.clock import ManualClock
from lab.errors import ConfigError
from lab.nemesis.faults import BLACKHOLE, CLEAN, CUT, LinkFault, effect_at, next_change
from lab.nemesis.proxyflow import Flow, burst_bytes
from lab.nemesis.tracker import FaultTracker


@pytest.mark.parametrize(("kw", "match"), [
    ({"kind": "partition"}, "unknown fault"),
    ({"kind": "slow"}, "slow needs"),
    ({"kind": "flap", "up_s": 1.0}, "flap needs"),
    ({"kind": "cut", "for_s": 0.0}, "--for"),
    ({"kind": "slow", "latency_s": -1.0}, "latency_s"),
    ({"kind": "slow", "bandwidth_bytes_s": 0.5}, "bandwidth"),
    ({"kind": "heal", "for_s": 3.0}, "heal takes no"),
])
def test_bad_faults_are_config_errors(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LinkFault(**kw)


def test_a_fault_survives_its_json_and_ignores_unknown_keys() -> None:
    f = LinkFault("slow", seq=3, for_s=30.0, latency_s=0.2, jitter_s=0.05, bandwidth_bytes_s=8000.0)
    assert LinkFault.from_json({**f.to_json(), "future_field": 1}) == f
    assert f.describe() == "slow (latency 200ms ± 50ms, bandwidth 64kbps each way) for 30s"
    with pytest.raises(ConfigError):
        LinkFault.from_json({"seq": 1})


def test_effects() -> None:
    assert effect_at(LinkFault("cut"), 1e6).mode == CUT
    assert effect_at(LinkFault("cut", for_s=3.0), 2.9).mode == CUT
    assert effect_at(LinkFault("cut", for_s=3.0), 3.0).mode == CLEAN
    assert effect_at(LinkFault("blackhole"), 0).mode == BLACKHOLE
    slow = effect_at(LinkFault("slow", latency_s=0.2, jitter_s=0.1), 5)
    assert (slow.mode, slow.latency_s, slow.jitter_s, slow.bandwidth_bytes_s) == (CLEAN, 0.2, 0.1, None)
    assert effect_at(None, 0).mode == CLEAN and effect_at(LinkFault("heal"), 0).mode == CLEAN


def test_flap_starts_down_and_alternates() -> None:
    f = LinkFault("flap", up_s=2.0, down_s=1.0, for_s=7.0)
    phases = [effect_at(f, t).phase for t in (0, 0.99, 1.0, 2.99, 3.0, 4.0, 6.5, 7.0)]
    assert phases == ["down", "down", "up", "up", "down", "up", "down", None]
    assert [effect_at(f, t).mode for t in (0.5, 1.5)] == [CUT, CLEAN]
    assert [next_change(f, t) for t in (0, 1.0, 2.5, 6.5, 7.0)] == [1.0, 3.0, 3.0, 7.0, None]
    assert next_change(LinkFault("cut"), 100) is None and next_change(LinkFault("cut", for_s=5), 1) == 5


class ListHistory:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def test_tracker_records_start_phase_and_end_with_the_clock() -> None:
    clock, hist = ManualClock(start=1000.0), ListHistory()
    t = FaultTracker("devices", clock, hist)
    t.apply(LinkFault("cut", seq=1, for_s=3.0))
    clock.advance(1.0)
    assert t.tick().mode == CUT and t.seconds_to_change() == pytest.approx(2.0)
    clock.advance(2.5)
    assert t.tick().mode == CLEAN and t.fault is None
    t.apply(LinkFault("flap", seq=2, up_s=1.0, down_s=1.0))
    clock.advance(1.0)
    t.tick()
    t.apply(LinkFault("blackhole", seq=3))  # replaces the flap
    clock.advance(0.5)
    t.apply(LinkFault("heal", seq=4))
    t.apply(LinkFault("heal", seq=5))  # nothing to heal: no record
    events = [(r["event"], r["fault"], r.get("reason") or r.get("phase"), r["t"]) for r in hist.records]
    assert events == [
        ("fault_start", "cut", None, 1000.0), ("fault_end", "cut", "expired", 1003.5),
        ("fault_start", "flap", None, 1003.5), ("fault_phase", "flap", "down", 1003.5),
        ("fault_phase", "flap", "up", 1004.5), ("fault_end", "flap", "replaced", 1004.5),
        ("fault_start", "blackhole", None, 1004.5), ("fault_end", "blackhole", "healed", 1005.0),
    ]
    assert all(r["target"] == "devices" for r in hist.records)
    assert hist.records[1]["duration_s"] == 3.0  # expired: exactly its --for
    assert [p["reason"] for p in t.snapshot()["past_faults"]] == ["expired", "replaced", "healed"]
    assert t.snapshot()["fault"] is None


def test_a_stopped_proxy_ends_its_fault() -> None:
    clock, hist = ManualClock(), ListHistory()
    t = FaultTracker("ingest", clock, hist)
    t.apply(LinkFault("slow", seq=1, latency_s=0.1))
    assert t.snapshot()["fault"]["latency_s"] == 0.1
    t.stop()
    assert hist.records[-1]["event"] == "fault_end" and hist.records[-1]["reason"] == "stopped"


@given(st.lists(st.tuples(st.floats(0, 0.01), st.floats(0, 0.5), st.binary(min_size=1, max_size=20)),
                min_size=1, max_size=50))
def test_a_flow_keeps_order_whatever_the_delays(chunks: list[tuple[float, float, bytes]]) -> None:
    flow, now, out = Flow(0.0), 0.0, bytearray()
    for gap, delay, data in chunks:
        now += gap
        flow.push(now, data, delay)
        flow.release_due(now)
        n = flow.allowance(now, None)
        out += flow.out[:n]
        flow.sent(n, None)
    while flow.buffered():
        now = flow.next_wakeup(now, None) or now
        flow.release_due(now)
        out += flow.out
        flow.sent(len(flow.out), None)
    assert bytes(out) == b"".join(d for _, _, d in chunks)


def test_a_chunk_waits_its_delay() -> None:
    flow = Flow(10.0)
    flow.push(10.0, b"a", 0.2)
    flow.release_due(10.19)
    assert not flow.out and flow.next_wakeup(10.19, None) == pytest.approx(10.2)
    flow.release_due(10.2)
    assert bytes(flow.out) == b"a"


def test_the_bucket_starts_empty_and_never_exceeds_the_rate() -> None:
    rate, flow, now, sent = 1000.0, Flow(0.0), 0.0, 0
    flow.push(0.0, b"x" * 5000)
    while flow.buffered():
        n = flow.allowance(now, rate)
        flow.sent(n, rate)
        sent += n
        assert sent <= now * rate + 1e-6  # never ahead of the rate (the bucket starts empty)
        now = flow.next_wakeup(now, rate) or now
    assert now >= 5000 / rate - 1e-9
    # idle, the bucket fills only up to its burst
    assert flow.allowance(now + 100, rate) == 0  # nothing left to send
    flow.push(now + 100, b"y" * 5000)
    assert flow.allowance(now + 100, rate) == int(burst_bytes(rate))
