"""Fault windows: the nemesis's fault_start/fault_end records paired into windows, and the
windows labelled with the ids a scenario knows them by. Pure."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from lab.history.events import FaultWindow, History
from lab.history.records import as_float, as_str


def pair_faults(records: Iterable[Mapping[str, Any]]) -> tuple[list[FaultWindow], int]:
    """nemesis.jsonl records → fault windows, in order of start; and how many were skipped.

    A fault_end closes the open fault_start with the same "id" if the records carry one; else
    the same (target, "seq") (lab.nemesis.tracker's records); else the oldest open start of the
    same (fault, target). A start never ended gives end=None; an end with no open start, and
    any other event (fault_phase, ...), is skipped (phases are not counted as malformed).
    Windows without an id are named "<fault>-<target>-<n>" (n counts from 1 per name).
    """
    windows: list[dict[str, Any]] = []
    open_: dict[tuple[Any, ...], deque[int]] = {}
    counts: dict[str, int] = {}
    skipped = 0

    def pair_key(rec: Mapping[str, Any]) -> tuple[Any, ...]:
        if rec.get("id") is not None:
            return ("id", str(rec["id"]))
        if rec.get("seq") is not None:
            return ("seq", str(rec["target"]), rec["seq"])
        return ("ft", str(rec["fault"]), str(rec["target"]))

    for rec in records:
        try:
            event, t = rec["event"], as_float(rec["t"])
            if event not in ("fault_start", "fault_end"):
                if event != "fault_phase":
                    skipped += 1
                continue
            fault, target = as_str(rec["fault"]), as_str(rec["target"])
            key = pair_key(rec)
        except (KeyError, TypeError, ValueError):
            skipped += 1
            continue
        if event == "fault_start":
            if rec.get("id") is not None:
                wid = str(rec["id"])
            else:
                base = f"{fault}-{target}"
                counts[base] = counts.get(base, 0) + 1
                wid = f"{base}-{counts[base]}"
            persistence = rec.get("persistence")
            windows.append({"id": wid, "fault": fault, "target": target, "start": t, "end": None,
                            "persistence": persistence if isinstance(persistence, bool) else None})
            open_.setdefault(key, deque()).append(len(windows) - 1)
        else:
            queue = open_.get(key)
            if not queue:
                skipped += 1
                continue
            w = windows[queue.popleft()]
            w["end"] = max(t, w["start"])
    out = [FaultWindow(**w) for w in windows]
    out.sort(key=lambda w: w.start)
    return out, skipped


KIND_ALIASES = {"latency": "slow", "bandwidth": "slow"}  # scenario kind → the proxy's record


def label_windows(history: History, names: Iterable[tuple[str, str, str, float]], *,
                  tolerance_s: float) -> History:
    """The same history with its fault windows renamed to the ids a scenario knows them by.

    `names` are (id, kind, target, start): for each, the window on that target, of that kind
    (a scenario's latency and bandwidth match the proxy's "slow"), not yet labelled, whose start
    is nearest to `start` and at most `tolerance_s` away, takes the id. The proxy's records
    carry no scenario id, so a runner passes its plan here (start = the run's first simulated
    time + the step's `at`). A window that already has the id is left as it is; names that
    match no window are ignored (the verdict then reports the window as missing)."""
    faults = list(history.faults)
    taken: set[int] = set()
    for wid, kind, target, start in names:
        if any(w.id == wid for w in faults):
            continue
        kinds = {kind, KIND_ALIASES.get(kind, kind)}
        best: int | None = None
        for i, w in enumerate(faults):
            if i in taken or w.target != target or w.fault not in kinds:
                continue
            gap = abs(w.start - start)
            if gap <= tolerance_s and (best is None or gap < abs(faults[best].start - start)):
                best = i
        if best is not None:
            taken.add(best)
            faults[best] = replace(faults[best], id=wid)
    return replace(history, faults=faults)
