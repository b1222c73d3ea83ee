"""What the live page remembers between polls: the tiers' levels over time and the process
outages it saw. Pure (no files, no clock of its own): live_state.py feeds it.

    LevelSeries   (t, outbox, broker queue, stored) points, at most `max_points`, at least
                  `min_step_s` simulated seconds apart. When full, the older half is thinned
                  to every other point, so the chart keeps the whole period served, at a
                  coarser step the further back it goes. Memory and the JSON are bounded
                  whatever the run's length.
    OutageLog     the windows in which a component (ingest, the broker, the fleet, ...) was
                  not running, as the status showed them poll after poll. `ecgpipe kill`
                  records nothing in history/nemesis.jsonl (only scenario runs do), so the page
                  keeps these itself to shade them; at most `max_windows`.

Each level is what the lab already counts (live_state.py says where): the series only
remembers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_POINTS = 600
MAX_WINDOWS = 50


@dataclass(frozen=True, slots=True)
class LevelPoint:
    t: float  # simulated Unix seconds
    outbox: int  # readings in the device outboxes (the ledger's buffered)
    broker: int | None  # messages the broker holds for subscribers (None: no $SYS sample yet)
    stored: int  # readings stored (the ledger's stored)


class LevelSeries:
    def __init__(self, max_points: int = MAX_POINTS, min_step_s: float = 0.5) -> None:
        if max_points < 4:
            raise ValueError("a level series needs room for at least 4 points")
        self.max_points, self.min_step_s = max_points, min_step_s
        self._points: list[LevelPoint] = []

    def add(self, point: LevelPoint) -> bool:
        """Remember a point; False (and nothing kept) when it comes less than `min_step_s`
        after the last one, or before it (a clock that went back: a restarted stack)."""
        if self._points and point.t < self._points[-1].t + self.min_step_s:
            if point.t < self._points[-1].t:
                self._points.clear()  # another run in the same state dir: start again
            else:
                return False
        self._points.append(point)
        if len(self._points) > self.max_points:
            half = len(self._points) // 2
            self._points = self._points[:half:2] + self._points[half:]
        return True

    @property
    def points(self) -> list[LevelPoint]:
        return list(self._points)

    def rate(self, window_s: float) -> float | None:
        """Readings stored per simulated second over the last `window_s` (from the newest point
        back to the first point at least that old, else the oldest); None with under 2 points."""
        pts = self._points
        if len(pts) < 2:
            return None
        last = pts[-1]
        first = next((p for p in reversed(pts) if last.t - p.t >= window_s), pts[0])
        span = last.t - first.t
        return (last.stored - first.stored) / span if span > 0 else None

    def as_dict(self) -> dict[str, list[Any]]:
        """Columns, for the page: t, outbox, broker, stored."""
        pts = self._points
        return {"t": [round(p.t, 3) for p in pts], "outbox": [p.outbox for p in pts],
                "broker": [p.broker for p in pts], "stored": [p.stored for p in pts]}


@dataclass(frozen=True, slots=True)
class Outage:
    target: str  # the component: ingest, broker, devices, ...
    what: str  # in words: "killed by SIGKILL (`ecgpipe kill`)"
    start: float  # simulated Unix seconds
    end: float | None = None  # None: still down


class OutageLog:
    def __init__(self, max_windows: int = MAX_WINDOWS) -> None:
        self.max_windows = max_windows
        self._done: list[Outage] = []
        self._open: dict[str, Outage] = {}

    def observe(self, now: float, down: dict[str, tuple[str, float]]) -> None:
        """The components not running at `now`: name → (why, since when). A component that
        was down and is not any more gets its window closed at `now`."""
        for name in list(self._open):
            if name not in down:
                gone = self._open.pop(name)
                self._done.append(Outage(name, gone.what, gone.start, max(now, gone.start)))
        for name, (what, since) in down.items():
            known = self._open.get(name)
            if known is None or known.what != what:
                self._open[name] = Outage(name, what, min(since, now))
        del self._done[:-self.max_windows]

    @property
    def current(self) -> list[Outage]:
        return sorted(self._open.values(), key=lambda o: o.start)

    @property
    def windows(self) -> list[Outage]:
        """Every window seen, oldest first; the open ones end None."""
        return sorted([*self._done, *self._open.values()], key=lambda o: o.start)
