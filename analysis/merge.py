"""The merge rule that makes events idempotent. Pure.

An episode found by an evaluation of the rules is merged into the stored events of the same
device and kind that it touches: whose capture-time span [onset, last_seen] overlaps the
episode's, or is within MERGE_GAP_S[kind] of it (adjacent). It never inserts a second event
for what it touches; it extends the earliest-raised one:

    onset      = the earliest onset of all of them
    last_seen  = the latest end of all of them
    open       = that of the one that reaches last_seen (the episode's on a tie: it is newer)
    raised_at  = the earliest raised_at (when the system first knew; never moved later)
    evidence   = that of the longest span (the existing one's on a tie)

and deletes the others (an episode that bridges two events, e.g. a backlog filling the gap
between them, makes them one). An episode that touches nothing is a new event raised `now`.

So merging the same episode twice, or an episode inside an event, changes nothing: a duplicate
reading, a re-analysed window or a batch redone after a kill -9 raises nothing twice.

Adjacency per kind: two rate or rhythm episodes a few beats apart are one clinical episode
interrupted by the window's edge or a beat the detector missed (10 s for brady/tachy, 30 s for
AF, whose windows are 32 beats long); unreadable stretches within 5 s are one; pauses only
merge when they overlap or touch (0 s): two pauses are two pauses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from analysis.model import Episode

MERGE_GAP_S = {"brady": 10.0, "tachy": 10.0, "af": 30.0, "unreadable": 5.0, "pause": 0.0}


@dataclass(frozen=True)
class StoredEvent:
    id: int | None  # None: not stored yet
    device_id: str
    kind: str
    onset: float
    last_seen: float
    open: bool
    raised_at: float
    updated_at: float
    evidence: dict[str, Any]


def touches(ev: StoredEvent, ep: Episode) -> bool:
    gap = MERGE_GAP_S[ep.kind]
    return (ev.device_id == ep.device_id and ev.kind == ep.kind
            and ev.onset - gap <= ep.end and ep.onset <= ev.last_seen + gap)


def merge(existing: list[StoredEvent], ep: Episode,
          now: float) -> tuple[StoredEvent | None, list[int]]:
    """(the event to write, or None when nothing changes; ids of events to delete)."""
    hit = sorted((e for e in existing if touches(e, ep)), key=lambda e: (e.raised_at, e.id or 0))
    if not hit:
        return StoredEvent(None, ep.device_id, ep.kind, ep.onset, ep.end, ep.open, now, now,
                           dict(ep.evidence)), []
    keep = hit[0]
    onset = min(ep.onset, *(e.onset for e in hit))
    last = max(ep.end, *(e.last_seen for e in hit))
    reaching = [e for e in hit if e.last_seen == last]
    is_open = ep.open if ep.end == last else reaching[0].open
    longest = max(hit, key=lambda e: (e.last_seen - e.onset, -(e.id or 0)))
    evidence = (dict(ep.evidence) if ep.end - ep.onset > longest.last_seen - longest.onset
                else longest.evidence)
    merged = replace(keep, onset=onset, last_seen=last, open=is_open, evidence=evidence,
                     raised_at=min(e.raised_at for e in hit))
    drop = [e.id for e in hit[1:] if e.id is not None]
    if merged == keep and not drop:
        return None, []
    return replace(merged, updated_at=now), drop
