"""The `choices` of the commands that name a component: a fixed set, plus ingest's workers
(ingest-K), which argparse's tuples of choices cannot say."""

from __future__ import annotations

from collections.abc import Iterator

from lab.stack.statedir import COMPONENTS, worker_of

LOG_ALIASES = ("fleet", "proxy")  # lab.observe.logs.ALIASES


class Components:
    """What `kill`, `start` and `resume` take: a component, or one ingest worker (ingest-K)."""

    NAMES = ("ingest", "broker", "devices", "analysis", "postgres", "nats-1", "nats-2", "nats-3",
             "nats-leader")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.NAMES or worker_of(name) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter((*self.NAMES, "ingest-K (one of several ingest workers)"))


class LogChoices:
    """What `logs` takes: a component, an ingest worker, or an alias."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in (*COMPONENTS, *LOG_ALIASES) or worker_of(name) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter((*COMPONENTS, "ingest-K", *LOG_ALIASES))
