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
from pathlib import Path
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
    let the simulated run begin.

    With an `anchor_file` instead, the anchor is not known yet: simulated time stands still
    until that file appears and holds the anchor (a Unix time). The clock looks for it at
    most every ANCHOR_POLL_S real seconds. So a lab can start its processes, wait exactly as
    long as they take to become healthy, then write the anchor a moment ahead, and every
    process (and any started later) begins the run at the same instant."""

    ANCHOR_POLL_S = 0.02

    def __init__(self, speed: float = 1.0, origin: float | None = None, anchor: float | None = None,
                 anchor_file: str | os.PathLike[str] | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed!r}")
        self.speed = float(speed)
        real_now = time.time()
        self._origin = real_now if origin is None else float(origin)
        self._anchor_file = None if anchor_file is None else Path(anchor_file)
        self._next_poll = 0.0
        # the monotonic instant at which simulated time starts moving (None: not known yet)
        self._start: float | None = None
        if anchor_file is None:
            self._set_anchor(real_now if anchor is None else float(anchor))

    def _set_anchor(self, anchor: float) -> None:
        self._start = time.monotonic() + (anchor - time.time())

    def _poll_anchor(self) -> None:
        real = time.monotonic()
        if self._anchor_file is None or real < self._next_poll:
            return
        self._next_poll = real + self.ANCHOR_POLL_S
        try:
            text = self._anchor_file.read_text(encoding="ascii").strip()
        except OSError:
            return
        try:
            self._set_anchor(float(text))
        except ValueError:
            return  # written atomically by the lab, so this is someone else's file: keep waiting

    @property
    def started(self) -> bool:
        """Whether the anchor is known (it may still be in the future)."""
        if self._start is None:
            self._poll_anchor()
        return self._start is not None

    def _elapsed(self) -> float:
        if self._start is None:
            self._poll_anchor()
            if self._start is None:
                return 0.0
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


def shared_clock_env(origin: float, anchor: float | str | os.PathLike[str]) -> dict[str, str]:
    """Environment that makes every ecgpipe process's make_clock() agree on simulated time.
    `anchor` is a real Unix time, or the path of a file that will hold it (ScaledClock's
    anchor_file), passed as "@PATH"."""
    if isinstance(anchor, (int, float)):
        return {ENV_ORIGIN: repr(float(origin)), ENV_ANCHOR: repr(float(anchor))}
    return {ENV_ORIGIN: repr(float(origin)), ENV_ANCHOR: "@" + os.fspath(anchor)}


def make_clock(speed: float = 1.0, origin: float | None = None) -> Clock:
    """The clock of a process: shared (origin and anchor from the environment, set by the lab
    for every process of one run), scaled, or the system clock."""
    env_origin, env_anchor = os.environ.get(ENV_ORIGIN), os.environ.get(ENV_ANCHOR)
    if env_origin and env_anchor:
        try:
            if env_anchor.startswith("@"):
                return ScaledClock(speed=speed, origin=float(env_origin), anchor_file=env_anchor[1:])
            return ScaledClock(speed=speed, origin=float(env_origin), anchor=float(env_anchor))
        except ValueError as exc:
            raise ValueError(f"{ENV_ORIGIN}/{ENV_ANCHOR} must be Unix times: {exc}") from exc
    if speed == 1.0 and origin is None:
        return SystemClock()
    return ScaledClock(speed=speed, origin=origin)
