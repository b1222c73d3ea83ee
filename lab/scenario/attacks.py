"""A scenario's [[attacks]]: an attacker (lab.nemesis.attacker) playing against the stack for a
window of the timeline. Attacks are not outages: they open no fault window, and the verdict
says what they achieved (forged, unexpected, lost, quarantined.<reason>).

    [[attacks]]
    id = "stolen"            # default: the kind
    kind = "forge-other"     # lab.nemesis.attacker.ATTACKS
    start = "2m"
    end = "6m"
    as = "hc-0003"           # a provisioned device whose login and certificate were stolen, or "anonymous"
    victim = "hc-0001"
    rate = 20                # messages per real second
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.checker.expect import WINDOW_ID
from lab.nemesis.attacker import ANONYMOUS, ATTACKS
from lab.scenario.locator import Errors
from lab.scenario.model import Path_, ScenarioError, _is_num
from lab.scenario.tables import as_duration, as_num, as_str, table

ATTACK: dict[str, Any] = {"id": as_str, "kind": as_str, "start": as_duration, "end": as_duration,
                          "as": as_str, "victim": as_str, "rate": as_num}


@dataclass(frozen=True)
class Attack:
    id: str
    kind: str
    start: float
    end: float
    identity: str = "hc-0000"
    victim: str = "hc-0001"
    rate: float = 20.0

    def __post_init__(self) -> None:
        if not WINDOW_ID.fullmatch(self.id):
            raise ScenarioError(f"an attack id is letters, digits, '-' or '_', got {self.id!r}")
        if self.kind not in ATTACKS:
            raise ScenarioError(f"attack kind must be one of {', '.join(ATTACKS)}, not {self.kind!r}")
        if not (_is_num(self.start) and 0 <= self.start < self.end):
            raise ScenarioError(f"attack {self.id!r}: start must be ≥ 0 and before end")
        if not (_is_num(self.rate) and self.rate > 0):
            raise ScenarioError(f"attack {self.id!r}: rate must be more than 0, got {self.rate!r}")
        for who in (self.identity, self.victim):
            if not (who == ANONYMOUS or WINDOW_ID.fullmatch(who)):
                raise ScenarioError(f"attack {self.id!r}: {who!r} is not a device id")


def attacks(err: Errors, raw: Any, duration: float) -> list[Attack]:
    if not isinstance(raw, list):
        raise err.at(("attacks",), "attacks must be an array of tables ([[attacks]])")
    out: list[Attack] = []
    for n, entry in enumerate(raw):
        path: Path_ = ("attacks", n)
        v = table(err, entry, path, ATTACK, required=("kind", "start", "end"))
        if v["end"] > duration:
            raise err.at((*path, "end"), f"the attack ends at {v['end']:g} s, after the run ({duration:g} s)")
        try:
            a = Attack(id=v.get("id") or v["kind"], kind=v["kind"], start=v["start"], end=v["end"],
                       identity=v.get("as", "hc-0000"), victim=v.get("victim", "hc-0001"),
                       rate=v.get("rate", 20.0))
        except ScenarioError as exc:
            raise err.at(path, str(exc)) from None
        if any(o.id == a.id for o in out):
            raise err.at((*path, "id"), f"attack id {a.id!r} is used twice")
        out.append(a)
    return out
