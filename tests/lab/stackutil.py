"""Helpers for tests that run a whole stack in a temporary state dir."""

from __future__ import annotations

from devices import inspect as dev_inspect
from ingest import inspect as ing_inspect
from lab.statedir import StateDir


def stored_total(sd: StateDir) -> int:
    return sum(len(s) for s in ing_inspect.stored_seqs(sd.ingest_db).values())


def generated_total(sd: StateDir) -> int:
    return sum(v["generated"] for v in dev_inspect.ledger_sets(sd.outbox_db).values())


def buffered_total(sd: StateDir) -> int:
    return sum(r["buffered"] for r in dev_inspect.device_summaries(sd.outbox_db))


def caught_up(sd: StateDir, slack: int = 3) -> bool:
    """Every device's newest stored seq is within `slack` of its newest generated seq."""
    gen = {d: v["generated"] for d, v in dev_inspect.ledger_sets(sd.outbox_db).items()}
    stats = ing_inspect.device_stats(sd.ingest_db)
    return bool(gen) and all((stats.get(d, {}).get("last_seq") or -1) >= g - slack for d, g in gen.items())


class Stable:
    """True once the stored count has not changed for `quiet_s` seconds."""

    def __init__(self, sd: StateDir, quiet_s: float = 1.5) -> None:
        import time

        self.sd, self.quiet_s, self.n, self.since, self.time = sd, quiet_s, -1, time.monotonic(), time

    def __call__(self) -> bool:
        n = stored_total(self.sd)
        if n != self.n:
            self.n, self.since = n, self.time.monotonic()
        return self.time.monotonic() - self.since >= self.quiet_s
