"""The analysis stage's values: what an analysed reading left (Segment), what one evaluation
of the rules found (Episode), and what the store keeps and the lab reads (Event).

Times are capture times (simulated Unix seconds of the patient's signal), except `raised_at`
and `updated_at`, which are the analysis clock's (when the system knew).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

KINDS = ("brady", "tachy", "pause", "af", "unreadable")


@dataclass(frozen=True)
class Segment:
    """One analysed reading: the stretch of signal it covers and whether it could be read."""

    device_id: str
    boot_epoch: int
    seq: int
    t0: float  # capture time of its first sample
    t1: float  # capture time just after its last sample
    strip_id: int  # 0: continuous; a strip is analysed on its own
    readable: bool
    quality: float | None  # mean template-match quality over the reading (None: too few beats)
    lead_off: bool

    def __post_init__(self) -> None:
        if not (math.isfinite(self.t0) and self.t1 > self.t0):
            raise ValueError(f"segment {self.device_id}/{self.seq}: t1 {self.t1} must follow t0 {self.t0}")


@dataclass(frozen=True)
class Episode:
    """What one evaluation of the rules saw: `kind` held from `onset` to `end` (capture
    times). `open`: it still held at the end of the contiguous signal it was seen in."""

    device_id: str
    kind: str
    onset: float
    end: float
    open: bool
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")
        if not self.end >= self.onset:
            raise ValueError(f"{self.kind} episode ends ({self.end}) before its onset ({self.onset})")


class Event(NamedTuple):
    """One clinical event as the lab reads it (analysis.store_view.events).

    onset/end: capture times (when the patient's heart did it); end is None while ongoing.
    raised_at: the analysis clock when the event was first stored (when the system knew);
    raised_at - onset is the delay an outage added. evidence: HR and RR statistics."""

    device_id: str
    kind: str
    onset: float
    end: float | None
    raised_at: float
    evidence: dict[str, Any]
    id: int = 0
    updated_at: float = 0.0
    last_seen: float = 0.0  # the last capture time the condition was seen (end, or so far)
