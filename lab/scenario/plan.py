"""A scenario's timeline as ordered, timed actions (Step) for a runner. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.scenario.model import Scenario, ScenarioError, _is_num
from lab.scenario.targets import PARTITION


@dataclass(frozen=True)
class Step:
    """One timed action. `at` is simulated seconds since the run began, `real_at` = at / speed.

    action: apply (params are lab.nemesis.faults.Fault fields: kind cut|blackhole|slow|flap, latency_s,
    jitter_s, bandwidth_bytes_s, up_s, down_s) | heal | partition | heal-partition (a NATS node's
    routes) | kill | term | stop | cont | start |
    attack | attack-end (params: as, victim, rate; kind is the attack's) | end.
    event: what the nemesis history records: fault_start | fault_end | run_end."""

    at: float
    real_at: float
    action: str
    event: str
    fault_id: str | None = None
    kind: str | None = None
    target: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


_PROCESS_ACTIONS = {"kill": ("kill", "start"), "term": ("term", "start"), "stop": ("stop", "cont")}


def plan(scenario: Scenario, speed: float = 1.0, variant: str | None = None) -> list[Step]:
    """The timeline as ordered actions: at equal times, ends before starts (a window that ends
    when the next begins heals first), then by fault id; the last step ends the run."""
    if not (_is_num(speed) and speed > 0):
        raise ScenarioError(f"speed must be more than 0, got {speed!r}")
    var = scenario.variant(variant)
    steps: list[tuple[float, int, str, Step]] = []
    for f in scenario.faults:
        if f.kind == PARTITION:  # a NATS node's routes cut (lab.nemesis.partition), then every route healed
            params: dict[str, Any] = {"kind": f.kind}
            begin, finish = "partition", "heal-partition"
        elif f.layer == "network":
            kind = {"latency": "slow", "bandwidth": "slow"}.get(f.kind, f.kind)
            params = {"kind": kind}
            for name, key in (("latency", "latency_s"), ("jitter", "jitter_s"),
                              ("bandwidth", "bandwidth_bytes_s"), ("up", "up_s"), ("down", "down_s")):
                if getattr(f, name) is not None:
                    params[key] = getattr(f, name)
            begin, finish = "apply", "heal"
        else:
            params = {"signal": {"kill": "KILL", "term": "TERM", "stop": "STOP"}[f.kind]}
            if f.target == "broker":
                params["persistence"] = var.broker.persistence
            begin, finish = _PROCESS_ACTIONS[f.kind]
        common = {"fault_id": f.id, "kind": f.kind, "target": f.target}
        steps.append((f.start, 1, f.id, Step(f.start, f.start / speed, begin, "fault_start",
                                             params=params, **common)))
        steps.append((f.end, 0, f.id, Step(f.end, f.end / speed, finish, "fault_end",
                                           params=params, **common)))
    for a in scenario.attacks:  # an attacker's window: started at start, stopped at end
        said = {"as": a.identity, "victim": a.victim, "rate": a.rate}
        for at, order, action in ((a.start, 1, "attack"), (a.end, 0, "attack-end")):
            steps.append((at, order, a.id, Step(at, at / speed, action, action.replace("-", "_") + (
                "_start" if action == "attack" else ""), fault_id=a.id, kind=a.kind, target=a.victim,
                params=said)))
    steps.append((scenario.duration, 2, "", Step(scenario.duration, scenario.duration / speed,
                                                 "end", "run_end")))
    steps.sort(key=lambda s: s[:3])
    return [s[3] for s in steps]
