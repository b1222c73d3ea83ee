"""How full each tier of a running (or stopped) stack is, read from its state dir.

Used by the demo, the scenario runner, the benchmarks and the tests to wait on conditions
("caught up", "ingest has gone quiet") instead of sleeping a fixed time.
"""

from __future__ import annotations

import time

from devices import outbox_view as dev_inspect
from ingest import store_view as ing_inspect
from lab.stack.statedir import StateDir


def stored_total(sd: StateDir) -> int:
    return int(ing_inspect.totals(sd.ingest_db)["stored"])


def generated_total(sd: StateDir) -> int:
    return sum(r["generated"] for r in dev_inspect.device_summaries(sd.outbox_db))


def buffered_total(sd: StateDir) -> int:
    return sum(r["buffered"] for r in dev_inspect.device_summaries(sd.outbox_db))


def caught_up(sd: StateDir, slack: int = 3) -> bool:
    """Every device's newest stored seq is within `slack` of its newest generated seq."""
    gen = {r["device_id"]: r["generated"] for r in dev_inspect.device_summaries(sd.outbox_db)}
    stats = ing_inspect.device_stats(sd.ingest_db)

    def done(d: str, g: int) -> bool:
        last = stats.get(d, {}).get("last_seq")
        return last is not None and last >= g - slack

    return bool(gen) and all(done(d, g) for d, g in gen.items())


class Stable:
    """True once the stored count has not changed for `quiet_s` real seconds."""

    def __init__(self, sd: StateDir, quiet_s: float = 1.5) -> None:
        self.sd, self.quiet_s, self.n, self.since = sd, quiet_s, -1, time.monotonic()

    def __call__(self) -> bool:
        n = stored_total(self.sd)
        if n != self.n:
            self.n, self.since = n, time.monotonic()
        return time.monotonic() - self.since >= self.quiet_s


class Drained:
    """True once the outboxes are empty and the stored count has not changed for `quiet_s`
    real seconds, or once neither stored nor buffered has changed for `stall_s` (whatever
    is left cannot be delivered: waiting longer changes nothing)."""

    def __init__(self, sd: StateDir, quiet_s: float = 1.5, stall_s: float = 10.0) -> None:
        self.sd, self.quiet_s, self.stall_s = sd, quiet_s, stall_s
        self.levels: tuple[int, int] = (-1, -1)
        self.since = time.monotonic()

    def __call__(self) -> bool:
        levels = (stored_total(self.sd), buffered_total(self.sd))
        if levels != self.levels:
            self.levels, self.since = levels, time.monotonic()
        quiet = time.monotonic() - self.since
        return (levels[1] == 0 and quiet >= self.quiet_s) or quiet >= self.stall_s

