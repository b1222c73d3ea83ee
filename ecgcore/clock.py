"""The injected clock. No ecgpipe component reads time.time() directly.

`now()` is simulated wall time (Unix seconds) and is what timestamps carry.
`monotonic()` is simulated monotonic time, for timers and deadlines.
`to_wall(dt)` converts a simulated duration to the real seconds a process should wait,
so an event loop can block in select/epoll for the right real time.

ScaledClock runs simulated time `speed` times faster than real time: the outage lab's
time compression. ManualClock only moves when told to, for fast deterministic tests.
"""

from __future__ import annotations

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
    """Simulated time = origin + speed × (real time since start)."""

    def __init__(self, speed: float = 1.0, origin: float | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed!r}")
        self.speed = float(speed)
        self._real0 = time.monotonic()
        self._origin = time.time() if origin is None else float(origin)

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._real0) * self.speed

    def monotonic(self) -> float:
        return (time.monotonic() - self._real0) * self.speed

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


def make_clock(speed: float = 1.0, origin: float | None = None) -> Clock:
    if speed == 1.0 and origin is None:
        return SystemClock()
    return ScaledClock(speed=speed, origin=origin)
