"""The injected clock: scaled time, a shared anchor across processes, frozen before it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ecgcore.clock import ManualClock, ScaledClock, SystemClock, make_clock, shared_clock_env


def test_manual_clock_only_moves_when_told() -> None:
    c = ManualClock(start=100.0)
    assert c.now() == 100.0 and c.monotonic() == 0.0
    c.advance(2.5)
    assert c.now() == 102.5 and c.monotonic() == 2.5
    with pytest.raises(ValueError):
        c.advance(-1)


def test_scaled_clock_runs_faster_and_converts_waits() -> None:
    c = ScaledClock(speed=100.0, origin=0.0)
    assert c.to_wall(50.0) == 0.5
    t0 = c.now()
    end = time.monotonic() + 0.05
    while time.monotonic() < end:
        pass
    assert c.now() - t0 >= 100.0 * 0.05 * 0.99


def test_simulated_time_stands_still_before_the_anchor() -> None:
    c = ScaledClock(speed=1000.0, origin=5_000.0, anchor=time.time() + 60)
    assert c.now() == 5_000.0 and c.monotonic() == 0.0


def test_processes_started_apart_agree_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    origin, anchor = 1_688_947_200.0, time.time() - 1.0
    env = shared_clock_env(origin, anchor)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    here = make_clock(speed=500.0).now()
    code = "from ecgcore.clock import make_clock; print(make_clock(speed=500.0).now())"
    there = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env={**__import__('os').environ}).stdout)
    # both ≈ origin + 500 × (real seconds since the anchor); the child started later, not earlier
    assert origin + 400 < here <= there < here + 500 * 5


def test_default_is_the_system_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECGPIPE_CLOCK_ORIGIN", raising=False)
    monkeypatch.delenv("ECGPIPE_CLOCK_ANCHOR", raising=False)
    assert isinstance(make_clock(), SystemClock)
