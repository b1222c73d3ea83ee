"""Waiting on a condition with a deadline: the one polling loop every ecgpipe part uses.

Nothing in ecgpipe sleeps a fixed time to let something happen; it polls what it waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ecgcore.clock import Clock, SystemClock


def wait_until(condition: Callable[[], object], deadline_s: float, *, poll_s: float = 0.05,
               clock: Clock | None = None, sleep: Callable[[float], None] = time.sleep,
               give_up: Callable[[], bool] | None = None,
               tick: Callable[[float], None] | None = None, tick_every_s: float = 3.0) -> bool:
    """Poll condition() every `poll_s` until it is true or `deadline_s` passes on the clock's
    monotonic timeline (real seconds for the default SystemClock).

    give_up() true ends the wait early (e.g. the process being waited on died). tick(elapsed)
    is called about every `tick_every_s` while waiting, for progress lines. Whatever ends the
    wait, condition() is asked once more and its answer returned, so a condition that became
    true at the last moment is not reported as a timeout.
    """
    clk = clock or SystemClock()
    start = clk.monotonic()
    last_tick = start
    while clk.monotonic() - start < deadline_s:
        if condition():
            return True
        if give_up is not None and give_up():
            break
        now = clk.monotonic()
        if tick is not None and now - last_tick >= tick_every_s:
            last_tick = now
            tick(now - start)
        sleep(poll_s)
    return bool(condition())
