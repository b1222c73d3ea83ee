"""The stack's simulated time, as the live page needs it to place levels, faults and ECG on one
axis (every timestamp the lab writes is the injected clock's: docs/architecture.md).

    shared clock (scenario runs: stack.json's clock_origin, and clock_anchor or DIR/clock-anchor)
                  the same ScaledClock every process of the run builds (ecgcore.clock)
    speed 1       the system clock, as every process of the stack
    speed K, no shared clock (a stack.json written by hand or an older lab): each process
                  started its own ScaledClock, so the fleet's is the one that dates the
                  readings: fleet/devices.json's `updated_at` carried forward from the file's
                  mtime at K simulated seconds per real second
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ecgcore.clock import ScaledClock
from ecgcore.files import read_json
from lab.errors import LabError
from lab.stack.statedir import StateDir

Wall = Callable[[], float]


@dataclass
class StackTime:
    """Simulated now and the speed, and real wall times converted to simulated ones."""

    now: float  # simulated Unix seconds
    speed: float
    wall: float  # the real Unix time `now` was taken at

    def from_wall(self, real: float) -> float:
        """A real Unix time (a pidfile's signalled_at) on the simulated axis."""
        return self.now - (self.wall - real) * self.speed


class StackClock:
    """The simulated now of the stack in `sd`; the ScaledClock of a shared clock is built once."""

    def __init__(self, sd: StateDir, wall: Wall = time.time) -> None:
        self.sd, self.wall = sd, wall
        self._shared: ScaledClock | None = None
        self._key: object = None

    def read(self) -> StackTime:
        wall = self.wall()
        try:
            cfg = self.sd.config()
        except (LabError, TypeError, ValueError):  # no stack.json: the system clock is all there is
            return StackTime(wall, 1.0, wall)
        if cfg.clock_origin is not None and (cfg.clock_anchor is not None or cfg.clock_anchor_file):
            key = (cfg.speed, cfg.clock_origin, cfg.clock_anchor, cfg.clock_anchor_file)
            if self._shared is None or key != self._key:
                anchor_file = self.sd.clock_anchor_file if cfg.clock_anchor_file else None
                self._shared = ScaledClock(cfg.speed, cfg.clock_origin,
                                           anchor=None if anchor_file else cfg.clock_anchor,
                                           anchor_file=anchor_file)
                self._key = key
            return StackTime(self._shared.now(), cfg.speed, wall)
        if cfg.speed == 1.0:
            return StackTime(wall, 1.0, wall)
        return StackTime(self._fleet_now(wall, cfg.speed), cfg.speed, wall)

    def _fleet_now(self, wall: float, speed: float) -> float:
        path = self.sd.devices_json
        doc = read_json(path)
        updated = doc.get("updated_at") if isinstance(doc, dict) else None
        try:
            written = path.stat().st_mtime
        except OSError:
            return wall
        if not isinstance(updated, int | float):
            return wall
        return float(updated) + max(0.0, wall - written) * speed
