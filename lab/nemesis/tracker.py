"""A link's current fault, its timer, and the nemesis history it leaves behind.

Every fault that starts is recorded in `history/nemesis.jsonl`, and so is its end:

    {"t", "event": "fault_start", "fault": "cut", "target": "ingest", "seq", "for_s", ...params}
    {"t", "event": "fault_phase", "fault": "flap", "target", "seq", "phase": "down" | "up"}
    {"t", "event": "fault_end",   "fault": "cut", "target", "seq", "reason", "duration_s"}

A fault over several links (a NATS node's partition, lab.nemesis.partition) is recorded once,
by the proxy it names, as "fault": "partition", "target": "nats-K" (or "nats-leader"), "node"
the node it cut off, and "via" the cut or blackhole it is made of.

`reason` is expired (its --for ran out), healed, replaced (another fault took its place)
or stopped (the proxy stopped). Times come from the injected clock: `t` is simulated wall
time, durations are simulated seconds.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from ecgcore.clock import Clock
from lab.nemesis.faults import HEALTHY, Effect, LinkFault, effect_at, expired, next_change


class FaultLog(Protocol):
    def append(self, record: dict[str, Any]) -> None: ...


class FaultTracker:
    def __init__(self, target: str, clock: Clock, history: FaultLog, keep: int = 20) -> None:
        self.target, self.clock, self.history = target, clock, history
        self.fault: LinkFault | None = None
        self.started_mono = 0.0
        self.started_at = 0.0
        self.effect: Effect = HEALTHY
        self.past: deque[dict[str, Any]] = deque(maxlen=keep)

    def elapsed(self) -> float:
        return self.clock.monotonic() - self.started_mono

    def _record(self, event: str, fault: LinkFault, **extra: Any) -> dict[str, Any]:
        """Append one record (under the name and target a fault over several links gives, by
        the one proxy it names) and return it."""
        rec = {"t": round(self.clock.now(), 3), "event": event, "fault": fault.record_as or fault.kind,
               "target": fault.record_target or self.target, "seq": fault.seq, **extra}
        if fault.record:
            self.history.append(rec)
        return rec

    def _end(self, reason: str) -> None:
        if self.fault is None:
            return
        duration = self.fault.for_s if reason == "expired" and self.fault.for_s else self.elapsed()
        end = self._record("fault_end", self.fault, reason=reason, duration_s=round(duration, 3))
        self.past.append({"fault": self.fault.kind, "seq": self.fault.seq, **self.fault.params,
                          "for_s": self.fault.for_s, "started_at": round(self.started_at, 3),
                          "ended_at": end["t"], "reason": reason})
        self.fault = None
        self.effect = HEALTHY

    def apply(self, fault: LinkFault) -> Effect:
        """Replace whatever is active by `fault` (heal: by nothing). Returns the new effect."""
        self._end("healed" if fault.kind == "heal" else "replaced")
        if fault.kind != "heal":
            self.fault = fault
            self.started_mono = self.clock.monotonic()
            via = {"via": fault.kind, "node": fault.record_node} if fault.record_as else {}
            start = self._record("fault_start", fault, for_s=fault.for_s, **via, **fault.params)
            self.started_at = start["t"]
            self.effect = effect_at(fault, 0.0)
            if self.effect.phase:
                self._record("fault_phase", fault, phase=self.effect.phase)
        return self.effect

    def tick(self) -> Effect:
        """Advance to the clock's present: end an expired fault, move a flap to its next phase."""
        if self.fault is None:
            return self.effect
        elapsed = self.elapsed()
        if expired(self.fault, elapsed):
            self._end("expired")
            return self.effect
        effect = effect_at(self.fault, elapsed)
        if effect.phase != self.effect.phase:
            self._record("fault_phase", self.fault, phase=effect.phase)
        self.effect = effect
        return effect

    def stop(self, reason: str = "stopped") -> None:
        self._end(reason)

    def seconds_to_change(self) -> float | None:
        """Simulated seconds until the effect next changes by itself, or None."""
        if self.fault is None:
            return None
        at = next_change(self.fault, self.elapsed())
        return None if at is None else max(0.0, at - self.elapsed())

    def snapshot(self) -> dict[str, Any]:
        current = None
        if self.fault is not None:
            left = None if self.fault.for_s is None else max(0.0, self.fault.for_s - self.elapsed())
            current = {"fault": self.fault.kind, "seq": self.fault.seq, **self.fault.params,
                       "for_s": self.fault.for_s, "started_at": round(self.started_at, 3),
                       "remaining_s": None if left is None else round(left, 3),
                       "phase": self.effect.phase, "mode": self.effect.mode,
                       "describe": self.fault.describe()}
        return {"fault": current, "past_faults": list(self.past)}
