"""devices/flow.py: the end-to-end congestion window."""

from __future__ import annotations

import math
import random

from devices.flow import CongestionWindow


def test_a_new_device_and_a_reconnect_send_their_whole_window() -> None:
    w = CongestionWindow(50)
    assert w.allowed == 50 and w.resume_at == -math.inf
    w.restart(10.0, herd=False)
    assert w.allowed == 50 and w.resume_at == -math.inf


def test_after_ingest_returns_a_device_starts_small_at_a_random_moment_then_grows() -> None:
    w = CongestionWindow(50, initial=2, spread=10.0, rng=random.Random(3))
    w.restart(100.0, herd=True)
    assert w.allowed == 2 and 100.0 <= w.resume_at <= 110.0
    w.confirmed(2)
    assert w.allowed == 4  # slow start: +1 a confirmation, doubling each round trip
    w.confirmed(4)
    assert w.allowed == 8
    w.confirmed(100)
    assert w.allowed == 50  # never above the configured window


def test_a_gap_halves_the_window_and_growth_turns_additive() -> None:
    w = CongestionWindow(50, initial=2, spread=0.0)
    w.restart(0.0, herd=True)
    w.confirmed(30)
    assert w.allowed == 32
    w.gap()
    assert w.allowed == 16
    w.confirmed(16)  # one round trip's confirmations: about +1
    assert 16.9 < w.size < 17.0
    for _ in range(10):
        w.gap()
    assert w.allowed == 1  # never below one reading


def test_the_moments_of_a_fleet_spread_over_the_whole_interval() -> None:
    starts = []
    for seed in range(200):
        w = CongestionWindow(50, spread=10.0, rng=random.Random(seed))
        w.restart(0.0, herd=True)
        starts.append(w.resume_at)
    assert min(starts) < 1.0 and max(starts) > 9.0
