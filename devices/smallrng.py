"""A small seeded random source for per-device timers: SplitMix64 with `random()` in [0, 1).

Each device kept two `random.Random` objects (its re-send jitter and its congestion window's
resume spread), each a Mersenne Twister with 2.5 KB of state: 5 KB a device, 15 MB for a
3,000-device fleet (tracemalloc, issue 13). They draw a number now and then and need neither
the period nor the distributions of `random.Random`; SplitMix64 (Steele, Lea and Flood 2014,
the seeding generator of xoshiro) has 8 bytes of state and passes BigCrush."""

from __future__ import annotations

from typing import Protocol

_MASK = (1 << 64) - 1


class UniformSource(Protocol):
    """What the device's timers draw from (random.Random qualifies too)."""

    def random(self) -> float: ...


class SplitMix:
    __slots__ = ("_s",)

    def __init__(self, seed: int) -> None:
        self._s = seed & _MASK

    def random(self) -> float:
        self._s = (self._s + 0x9E3779B97F4A7C15) & _MASK
        z = self._s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return ((z ^ (z >> 31)) >> 11) * 2.0 ** -53
