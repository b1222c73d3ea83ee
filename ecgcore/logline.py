"""The one log-line style of every ecgpipe process, and what `ecgpipe logs` merges on:

    2026-11-30T13:37:21.703Z message                          (speed 1: simulated = real)
    2026-11-30T13:37:21.703Z [sim 2026-12-02T09:12:00Z] message   (a compressed scenario run)

The leading stamp is always the real (wall-clock) time, so lines of processes that run on the
simulated clock (ingest, the fleet) interleave correctly with the broker's and the proxies'
real-time lines; the simulated time follows in brackets when it differs from real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from ecgcore.clock import Clock


def iso_ms(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(clock: Clock, wall: Callable[[], float] = time.time) -> str:
    """The prefix of a log line: real time, and the simulated time when it is not real time."""
    real, sim = wall(), clock.now()
    if abs(sim - real) < 1.0:
        return iso_ms(real)
    return f"{iso_ms(real)} [sim {iso_ms(sim)[:-5]}Z]"
