"""What a process fault may target: a component of the variant's stack."""

from __future__ import annotations

import re

# and ingest-K (one of ingest_workers); nats-1..3 and nats-leader on a NATS cluster (the node
# leading the readings' stream when the fault starts)
PROCESS_TARGETS = ("ingest", "broker", "devices", "postgres", "nats-1", "nats-2", "nats-3", "nats-leader")
WORKER_TARGET = re.compile(r"ingest-([1-9][0-9]?)")
PARTITION = "partition"  # the fault kind that cuts one NATS node's routes (lab.nemesis.partition)
PARTITION_TARGETS = ("nats-1", "nats-2", "nats-3", "nats-leader")


def fault_targets(kind: str, links: tuple[str, ...] | None) -> tuple[str, tuple[str, ...]]:
    """What a fault of `kind` may target, in words, and the names: a link (`links`, for the
    network kinds), a NATS node (a partition) or a process (ingest-K besides these)."""
    if kind == PARTITION:
        return "NATS node", PARTITION_TARGETS
    if links is not None:
        return "link", links
    return "process", (*PROCESS_TARGETS, "ingest-K")


def target_problem(target: str, workers: int, store: str, kind: str = "mosquitto") -> tuple[str, str] | None:
    """Which [broker] key a variant must change for a fault on `target`, and what it lacks;
    None when the variant runs that target (ingest-K needs K workers; postgres, its store;
    nats-K and nats-leader, the NATS cluster)."""
    m = WORKER_TARGET.fullmatch(target)
    if m and int(m.group(1)) > workers:
        return "ingest_workers", f"runs {workers} ingest worker(s): set ingest_workers"
    if target.startswith("nats-") and kind != "nats-cluster":
        return "kind", f'runs {kind}: set kind = "nats-cluster"'
    if target == "postgres" and store != "postgres":
        return "store", f'stores in {store}: set store = "postgres"'
    return None


def engine_problem(kind: object, store: object, workers: object) -> tuple[str, str] | None:
    """[broker]'s engines: (key, what is wrong) or None."""
    if kind not in ("mosquitto", "nats-cluster"):
        return "kind", f'kind must be "mosquitto" or "nats-cluster", got {kind!r}'
    if store not in ("sqlite", "postgres"):
        return "store", f'store must be "sqlite" or "postgres", got {store!r}'
    if not (isinstance(workers, int) and not isinstance(workers, bool) and 1 <= workers <= 16):
        return "ingest_workers", f"ingest_workers must be 1..16, got {workers!r}"
    return None


MAX_DEVICES = 10_000  # what one fleet process drives (lab.stack.statedir.StackConfig)
MAX_PROCS = 16  # fleet processes at most (StackConfig.fleet_procs)


def fleet_problem(devices: int, procs: int) -> tuple[str, str] | None:
    """[fleet]'s size against its processes (both whole numbers >= 1): (key, what) or None."""
    if procs > min(MAX_PROCS, devices):
        return "procs", f"procs must be 1..{MAX_PROCS} and at most devices, got {procs}"
    if devices > MAX_DEVICES * procs:
        return "devices", (f"devices = {devices} is more than {procs} fleet process(es) drive "
                           f"({MAX_DEVICES} each): set [fleet] procs")
    return None
