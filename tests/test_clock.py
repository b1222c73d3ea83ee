"""The injected clock: scaled time, a shared anchor across processes, frozen before it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecgcore.clock import ManualClock, ScaledClock, SystemClock, make_clock, shared_clock_env
from tests.conftest import wait_until


def test_manual_clock_only_moves_when_told() -> None:
    c = ManualClock(start=100.0)
    assert c.now() == 100.0 and c.monotonic() == 0.0
    c.advance(2.5)
    assert c.now() == 102.5 and c.monotonic() == 2.5
    with pytest.raises(ValueError, match="does not go backwards"):
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


def test_an_anchor_file_holds_the_clock_until_it_is_written(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clock-anchor"
    for k, v in shared_clock_env(5_000.0, path).items():
        monkeypatch.setenv(k, v)
    c = make_clock(speed=100.0)
    assert isinstance(c, ScaledClock) and not c.started
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:  # however long it waits, simulated time stands still
        assert c.now() == 5_000.0 and c.monotonic() == 0.0
    path.write_text("not a time\n")
    assert c.now() == 5_000.0  # a file that is not an anchor: keep waiting
    anchor = time.time() - 2.0
    path.write_text(repr(anchor) + "\n")
    assert wait_until(lambda: c.started, 2.0)
    later = make_clock(speed=100.0)  # a process started after the anchor agrees at once
    a, b = c.now(), later.now()
    assert 5_000.0 + 190 < a <= b < a + 100 * 1.0


def test_the_lab_starts_the_clock_a_moment_ahead(tmp_path: Path) -> None:
    from lab.stack.control import start_clock
    from lab.stack.statedir import StateDir

    sd = StateDir(tmp_path)
    c = ScaledClock(speed=10.0, origin=0.0, anchor_file=sd.clock_anchor_file)
    anchor = start_clock(sd, lead_s=0.5)
    assert anchor > time.time() and float(sd.clock_anchor_file.read_text()) == anchor
    assert wait_until(lambda: c.started, 2.0) and c.monotonic() == 0.0  # known, not yet reached
    assert wait_until(lambda: c.monotonic() > 0.0, 3.0)
