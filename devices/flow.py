"""How many readings an end-to-end device may have in flight: a congestion window. Pure.

The broker holds at most a few thousand messages for the ingest session (its Receive Maximum
plus `max_queued`), then drops what comes after it, though every device got its PUBACK. When
a thousand devices come back from an outage together and each sends its whole backlog at
once, most of it is dropped, found missing (devices/resend.py, "gap"), sent again, dropped
again. So each device sends like TCP does:

    start        when ingest comes back online: `initial` readings, and not at once but after a
                 random wait of up to `spread` seconds, so a fleet that learns of ingest's return
                 in the same instant does not answer in that instant. After a plain connect
                 the window is whole again (a device's own link coming back is not a herd)
    slow start   +1 for every reading the ingest service confirms (doubling each round trip)
                 until the threshold, then +1/window per confirmation (one a round trip)
    a gap        a reading found missing halves the window (at least 1) and sets the threshold

never above the configured `limit` (--window). A device that is not in a hurry (live readings,
one a chunk) never notices any of this.
"""

from __future__ import annotations

import math

from devices.smallrng import SplitMix, UniformSource

RESUME_SPREAD = 1.0  # after ingest's return, devices resume within this share of the ack timeout


class CongestionWindow:
    def __init__(self, limit: int, *, initial: float = 2.0, spread: float = 0.0,
                 rng: UniformSource | None = None) -> None:
        self.limit = float(limit)
        self.initial = min(float(initial), self.limit)
        self.spread = spread
        self._rng = rng or SplitMix(0)
        self.size = self.limit  # a new device sends its window (a boot is not a herd)
        self.threshold = self.limit
        self.resume_at = -math.inf

    @property
    def allowed(self) -> int:
        """Readings that may be in flight now."""
        return max(1, int(self.size))

    def restart(self, now: float, *, herd: bool) -> None:
        """A new start. `herd` (ingest back online, every device at once): small again, and not
        before a random moment in the next `spread` seconds; else the whole window at once."""
        self.threshold = self.limit
        if herd:
            self.size = self.initial
            self.resume_at = now + self._rng.random() * self.spread
        else:
            self.size = self.limit
            self.resume_at = -math.inf

    def confirmed(self, n: int) -> None:
        for _ in range(n):
            if self.size < self.threshold:
                self.size += 1.0
            else:
                self.size += 1.0 / self.size
        self.size = min(self.size, self.limit)

    def gap(self) -> None:
        self.threshold = max(1.0, self.size / 2)
        self.size = self.threshold
