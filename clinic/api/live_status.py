"""The live page's header from `ecgpipe status --json`'s document (lab.report.status.status):
is the stack running, in an outage (which fault, since when), or down. Pure.

    running   every component that was started runs, and no link has a fault
    outage    a started component is not running (killed, frozen, ended by itself), or a link
              proxy has a fault on (cut, blackhole, slow, flap); each is one entry of `outages`
    down      nothing runs (after `ecgpipe down`, or a copied state dir)

A component that never started (no pidfile: `up --no-proxy`, no analysis) is no outage. A
process's `since` is its pidfile's signalled_at (real time, put on the simulated axis by
the caller's `from_wall`); a link fault's is the proxy's started_at (already simulated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lab.stack.procs import RUNNING

RUNNING_STATE, OUTAGE, DOWN = "running", "outage", "down"
LINKS = ("ingest", "devices")


def _started(c: Mapping[str, Any]) -> bool:
    return c.get("pid") is not None or c.get("state") == RUNNING


def component_names(doc: Mapping[str, Any]) -> list[str]:
    names = doc.get("components")
    return [str(n) for n in names] if isinstance(names, list) else []


def down_components(doc: Mapping[str, Any], from_wall: Callable[[float], float],
                    now: float) -> dict[str, tuple[str, float]]:
    """Started components that are not running: name → (why, since when, simulated)."""
    down: dict[str, tuple[str, float]] = {}
    for name in component_names(doc):
        c = doc.get(name)
        if not isinstance(c, Mapping) or not _started(c) or c.get("state") == RUNNING:
            continue
        at = c.get("signalled_at")
        since = from_wall(float(at)) if isinstance(at, int | float) else now
        down[name] = (str(c.get("reason") or c.get("state") or "not running"), min(since, now))
    return down


def link_faults(doc: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
    """The link faults on now: one entry per link, with the proxy's own words for it."""
    out = []
    for link in LINKS:
        c = doc.get(f"proxy-{link}")
        fault = c.get("fault") if isinstance(c, Mapping) else None
        if not isinstance(fault, Mapping):
            continue
        started = fault.get("started_at")
        out.append({"target": f"link {link}", "kind": str(fault.get("fault", "fault")),
                    "what": str(fault.get("describe") or fault.get("fault") or "fault"),
                    "since": float(started) if isinstance(started, int | float) else now})
    return out


def stack_state(doc: Mapping[str, Any] | None, from_wall: Callable[[float], float],
                now: float) -> dict[str, Any]:
    """The header: state, the outages (target, kind, what, since), each component's state."""
    if doc is None:
        return {"state": DOWN, "outages": [], "components": {}}
    names = component_names(doc)
    states = {n: str(doc[n].get("state")) for n in names if isinstance(doc.get(n), Mapping)}
    if not any(s == RUNNING for s in states.values()):
        return {"state": DOWN, "outages": [], "components": states}
    outages: list[dict[str, Any]] = [{"target": name, "kind": "process", "what": why, "since": since}
               for name, (why, since) in down_components(doc, from_wall, now).items()]
    outages += link_faults(doc, now)
    outages.sort(key=lambda o: float(o["since"]))
    return {"state": OUTAGE if outages else RUNNING_STATE, "outages": outages, "components": states}


def device_rows(doc: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each device's online state and since when (status's device_states)."""
    states = doc.get("device_states") if doc else None
    if not isinstance(states, Mapping):
        return {}
    return {str(d): {"online": bool(v.get("online")), "since": v.get("since")}
            for d, v in states.items() if isinstance(v, Mapping)}
