"""ingest/ratelimit.py: a token bucket per device."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.ratelimit import RateLimit


def test_a_flood_is_refused_once_its_burst_is_spent_and_others_are_not() -> None:
    rl = RateLimit(rate=2.0, burst=5)
    assert [rl.allow("flood", 0.0) for _ in range(8)] == [True] * 5 + [False] * 3
    assert rl.allow("honest", 0.0)  # its own bucket
    assert rl.refused == {"flood": 3}
    assert not rl.allow("flood", 0.4) and rl.allow("flood", 0.5)  # 2 a second: one after 0.5 s
    assert rl.refused == {"flood": 4}


def test_a_backlog_within_the_burst_is_never_refused() -> None:
    rl = RateLimit(rate=1.0, burst=5000)
    assert all(rl.allow("catching-up", 100.0) for _ in range(5000))
    assert not rl.refused


def test_large_payloads_spend_the_byte_bucket_first() -> None:
    rl = RateLimit(rate=1.0, burst=100)  # 100 messages, or 100 x 2048 bytes, at once
    big = [rl.allow("flood", 0.0, 65_000) for _ in range(10)]
    assert big == [True] * 3 + [False] * 7  # 204,800 bytes: three of 65,000
    assert all(rl.allow("honest", 0.0, 550) for _ in range(100))  # small readings: the count binds
    assert not rl.allow("honest", 0.0, 550)


def test_buckets_are_bounded() -> None:
    rl = RateLimit(rate=1.0, burst=2, max_devices=3)
    for i in range(10):
        rl.allow(f"d{i}", 0.0)
    assert rl.forgotten == 7 and len(rl._buckets) == 3


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        RateLimit(rate=0.0, burst=10)


@given(st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), min_size=1, max_size=300))
def test_never_more_than_burst_plus_rate_times_elapsed(times: list[float]) -> None:
    rl = RateLimit(rate=3.0, burst=4)
    times = sorted(times)
    allowed = sum(rl.allow("d", t) for t in times)
    assert allowed <= 4 + 3.0 * (times[-1] - times[0]) + 1e-9
    assert allowed + rl.refused["d"] == len(times)
