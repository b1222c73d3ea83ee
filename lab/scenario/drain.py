"""The drain phase's rule: when a run's backlog counts as delivered, stuck, or out of time. Pure.

After the timeline's end the devices record nothing more and deliver what they hold. Under
compression the network is not compressed, so this can take real time; the runner waits as
long as the backlog is really moving:

    delivered    the outboxes are empty, the broker holds no message for a subscriber (its
                 $SYS stored count less its retained ones, when known: a broker-ack backlog
                 sits in the broker after the devices let go of it), and the stored count has
                 not changed for `quiet_s` (or twice the longest pause between two steps of
                 progress seen so far, if longer)
    stalled      nothing has moved for max(`min_stall_s`, 3 × that longest pause). An
                 end-to-end device whose last copies were dropped sends a probe after its ack
                 timeout (10 s doubling), so a stall shorter than that would cut it off
    out of time  the drain has run longer than its limit: 1.5 × the time it projects for itself
                 (elapsed + what is left ÷ the rate measured so far), between `min_limit_s`
                 and `max_limit_s`

A slow but steady drain is therefore waited for; one that stopped is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecgcore.clock import Clock

DELIVERED, STALLED, OUT_OF_TIME = "delivered", "stalled", "out of time"


@dataclass(frozen=True)
class DrainLimits:
    quiet_s: float = 2.0
    min_stall_s: float = 30.0
    min_limit_s: float = 120.0
    max_limit_s: float = 900.0


class DrainRule:
    """Feed it the levels (stored, buffered) as often as you like; it says when to stop."""

    def __init__(self, clock: Clock, limits: DrainLimits | None = None) -> None:
        self.clock = clock
        self.limits = limits or DrainLimits()
        self.started: float | None = None
        self.first_stored = 0
        self.levels: tuple[int, int, int | None] | None = None
        self.last_change = 0.0
        self.longest_pause = 0.0

    def elapsed(self) -> float:
        return 0.0 if self.started is None else self.clock.monotonic() - self.started

    def limit(self, stored: int, buffered: int) -> float:
        lim = self.limits
        elapsed = self.elapsed()
        moved = stored - self.first_stored
        if moved <= 0 or elapsed <= 0:
            return lim.min_limit_s
        projected = elapsed + buffered / (moved / elapsed)
        return min(lim.max_limit_s, max(lim.min_limit_s, 1.5 * projected))

    def observe(self, stored: int, buffered: int, queued: int | None = None) -> str | None:
        """None while the drain should go on; else why it is over. `queued`: what the broker
        holds for subscribers (None: not known, e.g. no $SYS sample yet)."""
        now = self.clock.monotonic()
        if self.started is None:
            self.started, self.first_stored, self.last_change = now, stored, now
        if (stored, buffered, queued) != self.levels:
            if self.levels is not None:
                self.longest_pause = max(self.longest_pause, now - self.last_change)
            self.levels, self.last_change = (stored, buffered, queued), now
        still = now - self.last_change
        lim = self.limits
        empty = buffered == 0 and (queued is None or queued <= 0)
        if empty and still >= max(lim.quiet_s, 2 * self.longest_pause):
            return DELIVERED
        if still >= max(lim.min_stall_s, 3 * self.longest_pause):
            return STALLED
        if self.elapsed() >= self.limit(stored, buffered):
            return OUT_OF_TIME
        return None
