"""When a device in strip mode records its strips: per-day slots with seeded jitter. Pure.

HeartCheck CardiBeat users record a short strip (30 s by default) a few times a day. Here
each simulated UTC day (Unix seconds // 86400 of the injected clock's `now()`) is cut into
`strips_per_day` equal slots of L = 86400 / strips_per_day seconds, and slot j of day d
holds exactly one strip, starting at

    d * 86400 + j * L + offset(d, j),   offset uniform in [0, L - strip_seconds], whole ms,

drawn from `numpy.random.default_rng([seed, TAG, d, j])` where `seed` is the device's own
profile seed. So:

- strips never overlap and never cross their slot (a strip ends by the end of its slot);
- there are exactly `strips_per_day` strips in every UTC day;
- the schedule is a pure function of (seed, d, j): the same seed gives the same strips,
  whichever order they are asked for in, and a device rebooted mid-day keeps its day's
  schedule (it skips only what fell while it was down, see `first_at_or_after`);
- two devices (different seeds) record at different times of the slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from devices.errors import ConfigError

DAY_SECONDS = 86_400.0
_TAG = 0x57_21B5  # separates the schedule's random stream from the signal's (same seed)


@dataclass(frozen=True)
class StripSchedule:
    """The strip start times of one device. See the module docstring."""

    seed: int
    strips_per_day: int = 3
    strip_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.strips_per_day, int) or self.strips_per_day < 1:
            raise ConfigError(f"strips per day must be at least 1, got {self.strips_per_day}")
        if not (math.isfinite(self.strip_seconds) and self.strip_seconds > 0):
            raise ConfigError(f"strip seconds must be positive, got {self.strip_seconds}")
        if self.strip_seconds > self.slot_seconds:
            raise ConfigError(
                f"{self.strips_per_day} strips a day leave {self.slot_seconds:g}-s slots, "
                f"too short for a {self.strip_seconds:g}-s strip")
        if self.seed < 0:
            raise ConfigError(f"a schedule seed must be non-negative, got {self.seed}")

    @property
    def slot_seconds(self) -> float:
        return DAY_SECONDS / self.strips_per_day

    def start(self, day: int, slot: int) -> float:
        """Simulated Unix time at which the strip of (day, slot) starts."""
        span = self.slot_seconds - self.strip_seconds
        rng = np.random.default_rng([self.seed, _TAG, day, slot])
        offset = min(span, round(float(rng.uniform(0.0, span)), 3)) if span > 0 else 0.0
        return day * DAY_SECONDS + slot * self.slot_seconds + offset

    def next_slot(self, day: int, slot: int) -> tuple[int, int]:
        return (day, slot + 1) if slot + 1 < self.strips_per_day else (day + 1, 0)

    def first_at_or_after(self, t: float) -> tuple[int, int]:
        """The first (day, slot) whose strip starts at or after t (a device booted at t
        cannot record a strip that started before it was on)."""
        day = int(t // DAY_SECONDS)
        slot = min(self.strips_per_day - 1, int((t - day * DAY_SECONDS) // self.slot_seconds))
        while self.start(day, slot) < t:
            day, slot = self.next_slot(day, slot)
        return day, slot

    def starts_between(self, t0: float, t1: float) -> list[float]:
        """Every strip start s with t0 <= s < t1, in order."""
        out: list[float] = []
        day, slot = self.first_at_or_after(t0)
        while (s := self.start(day, slot)) < t1:
            out.append(s)
            day, slot = self.next_slot(day, slot)
        return out
