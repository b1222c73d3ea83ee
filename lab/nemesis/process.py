"""Process faults on a running stack: signal a component (kill, term, stop), resume it, or start
it again, and record each fault's start and end in the stack's history/nemesis.jsonl.

    ProcessOp(action, target, event, fault, fault_id)   one operation, and what it records
    ProcessNemesis(sd, cfg, clock, say).apply(op)        applies it now

A record, one JSON line (the link proxies record the network faults, lab.nemesis.tracker):

    {"t", "event": "fault_start" | "fault_end", "fault": "kill" | "term" | "stop", "target",
     "id", "persistence" (the broker only: whether its queue survives the fault)}

`t` is the injected clock's time (simulated wall time in a scenario run). A signal is
recorded before it is sent, so the fault's window covers the moment the process goes away; a
start or a resume is recorded once the process is back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ecgcore.clock import Clock
from ecgcore.files import JsonLines
from lab.errors import ComponentError
from lab.stack import control as stack
from lab.stack.control import Progress
from lab.stack.procs import RUNNING
from lab.stack.statedir import StackConfig, StateDir


class ProcessAction(enum.StrEnum):
    KILL = "kill"  # SIGKILL: the component is gone until it is started again
    TERM = "term"  # SIGTERM: it shuts down, and stays down until started again
    STOP = "stop"  # SIGSTOP: frozen until CONT
    CONT = "cont"  # SIGCONT: a frozen component runs again
    START = "start"  # start it again (if it is not running)

    @property
    def signal(self) -> str | None:
        """The signal it sends (KILL, TERM, STOP), or None for cont and start."""
        return None if self in (ProcessAction.CONT, ProcessAction.START) else self.value.upper()


@dataclass(frozen=True)
class ProcessOp:
    """One process operation. `fault` is the kind of the fault it belongs to (kill, term or
    stop: a kill fault starts with kill and ends with start) and `fault_id` its window's id;
    `event` is what the history records: fault_start or fault_end."""

    action: ProcessAction
    target: str  # a component: ingest, broker or devices
    event: str
    fault: str
    fault_id: str


class ProcessNemesis:
    """Applies process operations to the stack in `sd` and records them (close() at the end)."""

    def __init__(self, sd: StateDir, cfg: StackConfig, clock: Clock, say: Progress) -> None:
        self.sd, self.cfg, self.clock, self.say = sd, cfg, clock, say
        self.history = JsonLines(sd.nemesis_history)

    def record(self, op: ProcessOp) -> None:
        rec: dict[str, Any] = {"t": round(self.clock.now(), 3), "event": op.event, "fault": op.fault,
                               "target": op.target, "id": op.fault_id}
        if op.target == "broker":
            rec["persistence"] = self.cfg.persistence
        self.history.append(rec)

    def apply(self, op: ProcessOp) -> None:
        signal = op.action.signal
        if signal is not None:
            self.record(op)
            stack.kill(self.sd, op.target, signal)
        elif op.action is ProcessAction.START:
            if op.target == "nats-leader" or self.sd.component(op.target).state() != RUNNING:
                self._start(op.target)
            self.record(op)
        else:
            stack.resume(self.sd, op.target)
            self.record(op)

    def _start(self, name: str) -> None:
        """Start a component again; one that is running but not yet healthy after 5 s is noted,
        not raised."""
        try:
            if name.startswith("nats-"):  # a node: until the cluster has its streams' leaders again
                stack.start(self.sd, name)
            else:
                stack.start_component(self.sd, self.cfg, name, deadline_s=5.0)
        except ComponentError as exc:
            if self.sd.component(name).state() != RUNNING:
                raise
            self.say(f"      note: {name} started but is not healthy yet ({exc})")

    def close(self) -> None:
        self.history.close()
