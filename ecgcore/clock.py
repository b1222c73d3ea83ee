"""The injected clock. No ecgpipe component reads time.time() directly.

`now()` is simulated wall time (Unix seconds) and is what timestamps carry.
`monotonic()` is simulated monotonic time, for timers and deadlines.
`to_wall(dt)` converts a simulated duration to the real seconds a process should wait,
so an event loop can block in select/epoll for the right real time.

ScaledClock runs simulated time `speed` times faster than real time: the outage lab's
time compression. ManualClock only moves when told to, for fast deterministic tests.
"""

from __future__ import annotations

import os
import time
from typing import Protocol


class Clock(Protocol):
    speed: float

    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    def to_wall(self, sim_seconds: float) -> float: ...


class SystemClock:
    speed = 1.0

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def to_wall(self, sim_seconds: float) -> float:
        return sim_seconds


class ScaledClock:
    """Simulated time = origin + speed × (real time since the anchor).

    With an `anchor` (a real Unix time shared by several processes, see shared_clock_env),
    every process that uses the same origin, anchor and speed agrees on simulated time, even
    though each started at a different moment. Before the anchor, simulated time stands still
    at the origin: a lab can start its processes, wait until all are healthy, and only then
    let the simulated run begin."""

    def __init__(self, speed: float = 1.0, origin: float | None = None, anchor: float | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed!r}")
        self.speed = float(speed)
        real_now, self._real0 = time.time(), time.monotonic()
        anchor = real_now if anchor is None else float(anchor)
        # the monotonic instant at which simulated time starts moving
        self._start = self._real0 + (anchor - real_now)
        self._origin = real_now if origin is None else float(origin)

    def _elapsed(self) -> float:
        return max(0.0, time.monotonic() - self._start) * self.speed

    def now(self) -> float:
        return self._origin + self._elapsed()

    def monotonic(self) -> float:
        return self._elapsed()

    def to_wall(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed


class ManualClock:
    """A clock that only advances when the test says so."""

    def __init__(self, start: float = 1_700_000_000.0, speed: float = 1.0) -> None:
        self._t = float(start)
        self._m = 0.0
        self.speed = speed

    def now(self) -> float:
        return self._t

    def monotonic(self) -> float:
        return self._m

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._t += seconds
        self._m += seconds

    def to_wall(self, sim_seconds: float) -> float:
        return 0.0


ENV_ORIGIN = "ECGPIPE_CLOCK_ORIGIN"
ENV_ANCHOR = "ECGPIPE_CLOCK_ANCHOR"


def shared_clock_env(origin: float, anchor: float) -> dict[str, str]:
    """Environment that makes every ecgpipe process's make_clock() agree on simulated time."""
    return {ENV_ORIGIN: repr(float(origin)), ENV_ANCHOR: repr(float(anchor))}


def make_clock(speed: float = 1.0, origin: float | None = None) -> Clock:
    """The clock of a process: shared (origin and anchor from the environment, set by the lab
    for every process of one run), scaled, or the system clock."""
    env_origin, env_anchor = os.environ.get(ENV_ORIGIN), os.environ.get(ENV_ANCHOR)
    if env_origin and env_anchor:
        try:
            return ScaledClock(speed=speed, origin=float(env_origin), anchor=float(env_anchor))
        except ValueError as exc:
            raise ValueError(f"{ENV_ORIGIN}/{ENV_ANCHOR} must be Unix times: {exc}") from exc
    if speed == 1.0 and origin is None:
        return SystemClock()
    return ScaledClock(speed=speed, origin=origin)
