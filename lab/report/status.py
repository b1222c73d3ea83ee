"""`ecgpipe status`: each component's pid and state, each link's fault, each device's online state.

States (lab.stack.procs): running; stopped (frozen by SIGSTOP, and only that); exited. Each
component not running carries a `reason` ("shut down by `ecgpipe down`", "killed by SIGKILL", ...).

A damaged state dir still gets a status: without a readable stack.json the components' pids
and states come from their pidfiles alone and `stack_error` says what is wrong (the settings
it held, such as the delivery mode and the ports, are then None); a damaged pidfile shows as
`pidfile_error` of its component; an unreadable fleet/devices.json as `devices_error` (it is
rewritten every second by a running fleet, so only the online counts are unknown).

`metrics`: each Prometheus endpoint the stack's processes recorded (lab/stack/metrics.py), by
name (ingest, ingest-K, fleet, fleet-K): url, host, port, pid, and `live` while that pid runs.
`problems(doc)` lists the first two kinds: `ecgpipe status` prints the view and then exits 1
with the first of them as its one-line error.

Text times are ISO 8601 UTC with how long ago (lab.timefmt); --json keeps Unix seconds.
"""

from __future__ import annotations

import time
from typing import Any

from ecgcore.files import JsonFileError, json_type, load_json
from ecgcore.modes import LINKS
from lab.errors import StateDirError
from lab.nemesis.proxyctl import link_state, upstreams_of
from lab.stack.control import proxy_port
from lab.stack.metrics import metrics_records
from lab.stack.procs import RUNNING, STOPPED, Component
from lab.stack.statedir import COMPONENTS, StackConfig, StateDir
from lab.timefmt import when
from lab.units import format_duration


def status(sd: StateDir) -> dict[str, Any]:
    """The status document. Raises StateDirError only when the state dir holds neither a
    stack.json nor a pidfile (no stack at all); see the module docstring for the rest."""
    cfg: StackConfig | None = None
    try:
        cfg = sd.config()
        stack_error = None
    except StateDirError as exc:
        if not sd.has_pidfiles():
            raise
        stack_error = str(exc)
    doc: dict[str, Any] = {"state_dir": str(sd.root), "delivery": cfg.delivery if cfg else None,
                           "stack_error": stack_error}
    doc["components"] = list(sd.component_names())
    for name in doc["components"]:
        doc[name] = _component(sd.component(name))
    if "ingest" not in doc:  # several workers: `ingest` sums them up (scripts read doc["ingest"])
        doc["ingest"] = _tier(doc, [n for n in doc["components"] if n.startswith("ingest-")], "workers")
    if "broker" not in doc:  # a NATS cluster: `broker` sums up its nodes
        doc["broker"] = _tier(doc, [n for n in doc["components"] if n.startswith("nats-")], "nodes")
    for link in LINKS:
        doc[f"proxy-{link}"].update(_link(sd, cfg, link, doc[f"proxy-{link}"]))
    for name in doc["components"]:  # a NATS cluster's route proxies (lab/stack/nats_routes.py)
        if name.startswith("proxy-route-"):
            doc[name].update(_link(sd, None, name.removeprefix("proxy-"), doc[name]))
    doc["broker"].update({"host": cfg.host if cfg else None, "port": cfg.port if cfg else None,
                          "max_queued": cfg.max_queued if cfg else None,
                          "persistence": cfg.persistence if cfg else None})
    fleet, doc["devices_error"] = _fleet(sd)
    fleet_alive = doc["devices"]["state"] == RUNNING and fleet.get("pid") == doc["devices"]["pid"]
    raw = fleet.get("devices")
    devs = {d: v for d, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}
    doc["devices"]["count"] = cfg.devices if cfg else len(devs)
    doc["devices"]["online"] = sum(1 for d in devs.values() if d.get("online")) if fleet_alive else 0
    doc["devices"]["updated_at"] = fleet.get("updated_at")
    doc["analysis"].update(_analysis(sd))
    doc["device_states"] = {
        d: {"online": bool(v.get("online")) and fleet_alive, "since": v.get("since"),
            "reconnects": v.get("reconnects", 0), "boot_epoch": v.get("boot_epoch")}
        for d, v in sorted(devs.items())
    }
    doc["metrics"] = metrics_records(sd.root)
    return doc


def _analysis(sd: StateDir) -> dict[str, Any]:
    """How far the analysis stage got: readings analysed, how many stored readings it has not
    reached yet, events raised (None each when its store is missing or unreadable)."""
    from analysis.errors import AnalysisError
    from analysis.store_view import progress

    try:
        prog = progress(sd.analysis_db)
    except AnalysisError:  # `inspect alerts` says what is wrong with it
        prog = {}
    return {k: prog.get(k) for k in ("analysed", "behind", "events")}


def problems(doc: dict[str, Any]) -> list[str]:
    """What makes the status incomplete: a missing or damaged stack.json, damaged pidfiles."""
    found = [doc["stack_error"]] if doc.get("stack_error") else []
    return found + [doc[n]["pidfile_error"] for n in _names(doc) if doc[n].get("pidfile_error")]


def _names(doc: dict[str, Any]) -> list[str]:
    """The components a status document has rows for (COMPONENTS in one saved before workers)."""
    names = doc.get("components")
    return list(names) if isinstance(names, list) else list(COMPONENTS)


def raise_problems(doc: dict[str, Any]) -> None:
    """`ecgpipe status`'s exit: StateDirError with the first problem, once the view is shown."""
    found = problems(doc)
    if found:
        more = f" (and {len(found) - 1} more, shown above)" if len(found) > 1 else ""
        raise StateDirError(found[0] + more)


def _tier(doc: dict[str, Any], members: list[str], what: str) -> dict[str, Any]:
    """Ingest's workers or a cluster's nodes as a whole: running while any member runs
    (`reason` says how many), with each member's state under `workers` or `nodes`."""
    states = {n: doc[n]["state"] for n in members}
    running = sum(1 for st in states.values() if st == RUNNING)
    state = RUNNING if running else (STOPPED if STOPPED in states.values() else "exited")
    reason = None if running == len(members) else f"{running} of {len(members)} {what} running"
    return {"pid": None, "state": state, "reason": reason, what: states,
            "last_signal": None, "stopped_by": None, "signalled_at": None, "started_at": None,
            "pidfile_error": None, "log": None}


def _component(comp: Component) -> dict[str, Any]:
    info = comp.info() or {}
    state = comp.state()
    return {"pid": info.get("pid"), "state": state, "reason": _reason(info, state),
            "last_signal": info.get("last_signal"), "stopped_by": info.get("stopped_by"),
            "signalled_at": info.get("signalled_at"), "started_at": info.get("started_at"),
            "pidfile_error": comp.damage(), "log": str(comp.logfile)}


def _reason(info: dict[str, Any], state: str) -> str | None:
    """Why a component is not running, in words; None while it runs."""
    sig, by = info.get("last_signal"), info.get("stopped_by")
    if state == RUNNING:
        return None
    if state == STOPPED:
        return "frozen by SIGSTOP"
    if not info:
        return "never started (no pidfile)"
    if by == "down":
        return "shut down by `ecgpipe down`"
    if not sig:
        return "ended by itself (see its log)"
    how = "killed by SIGKILL" if sig == "KILL" else f"ended after SIG{sig}"
    return how + (" (`ecgpipe kill`)" if by == "kill" else "")


def _fleet(sd: StateDir) -> tuple[dict[str, Any], str | None]:
    """fleet/devices.json, or {} and what is wrong with it."""
    try:
        doc = load_json(sd.devices_json)
    except JsonFileError as exc:
        return {}, str(exc)
    if doc is None and sd.component("devices").info():
        return {}, f"{sd.devices_json} is missing, though the fleet ran"
    if doc is None or isinstance(doc, dict):
        return doc or {}, None
    return {}, f"{sd.devices_json} is damaged: it holds {json_type(doc)}, not an object"


def _link(sd: StateDir, cfg: StackConfig | None, link: str, comp: dict[str, Any]) -> dict[str, Any]:
    """A link proxy's ports, current fault and counters; no fault unless the proxy runs."""
    st = link_state(sd.root, link) or {}
    live = comp["state"] == RUNNING and st.get("pid") == comp["pid"]
    conns = st.get("connections") or {}
    if not isinstance(conns, dict):
        conns = {}
    ups = upstreams_of(st)
    raw_listen = st.get("listen")
    listen = raw_listen if isinstance(raw_listen, dict) else {}
    return {"listen_port": proxy_port(cfg, link) if cfg else listen.get("port"),
            "upstream_port": cfg.port if cfg else (ups[0].get("port") if ups else None),
            "upstreams": [f"{u.get('host')}:{u.get('port')}" for u in ups] if ups else None,
            "fault": st.get("fault") if live else None,
            "connections": conns.get("open", 0) if live else 0,
            "bytes": st.get("bytes"), "updated_at": st.get("updated_at")}


def _fault_text(c: dict[str, Any]) -> str:
    f = c.get("fault")
    if not f or not isinstance(f, dict):
        return "clean" if not f else "fault unknown (the proxy's state file is damaged)"
    kind = str(f.get("fault", "?"))
    text = str(f.get("describe") or kind)
    if kind in ("cut", "blackhole"):  # stand out in the table
        text = kind.upper() + text[len(kind):]
    if f.get("phase"):
        text += f", now {f['phase']}"
    left = f.get("remaining_s")
    if isinstance(left, int | float):
        text += f", {format_duration(round(left, 1)) if left >= 0.05 else '0s'} left"
    return text


def format_status(doc: dict[str, Any], limit: int = 30, now: float | None = None) -> str:
    now = time.time() if now is None else now
    settings = f"delivery {doc['delivery']}" if doc.get("stack_error") is None else "stack.json unreadable"
    names = _names(doc)
    w = max([14, *(len(n) + 1 for n in names)])  # proxy-route-1-2 is 15 characters
    lines = [f"stack in {doc['state_dir']} ({settings})",
             f"{'component':<{w}}{'pid':>8}  {'state':<9}detail"]
    for name in names:
        c = doc[name]
        lines.append(f"{name:<{w}}{c['pid'] or '-':>8}  {c['state']:<9}{_detail(name, c, now)}")
    items = list(doc["device_states"].items())
    if items:
        shown = ", ".join(f"{d} {'online' if v['online'] else 'OFFLINE'}" for d, v in items[:limit])
        lines.append("devices: " + shown + (f", ... {len(items) - limit} more" if len(items) > limit else ""))
    if doc.get("devices_error"):
        lines.append(f"devices online unknown: {doc['devices_error']}")
    lines += _metrics_lines(doc.get("metrics") or {})
    lines += [f"warning: {p}" for p in problems(doc)]
    return "\n".join(lines)


def _metrics_lines(endpoints: dict[str, Any]) -> list[str]:
    """One line: where each live process serves its Prometheus metrics."""
    live = [f"{n} {e['url']}" for n, e in endpoints.items() if e.get("live") and e.get("url")]
    return ["metrics: " + ", ".join(live)] if live else []


def _detail(name: str, c: dict[str, Any], now: float) -> str:
    detail = ""
    if name == "broker" and c.get("port") is not None:
        detail = f"{c['host']}:{c['port']}  max_queued {c['max_queued']}"
    elif name == "devices":
        detail = f"{c['online']}/{c['count']} online"
    elif name == "analysis" and c.get("analysed") is not None:
        detail = f"{c['analysed']} readings analysed, {c['behind']} behind, {c['events']} events"
    elif name.startswith("proxy-") and c.get("listen_port") is not None:
        ups = c.get("upstreams") or []
        to = " ".join(":" + u.rsplit(":", 1)[-1] for u in ups) if len(ups) > 1 else f":{c['upstream_port']}"
        detail = f":{c['listen_port']} → {to}  {c['connections']} conn  {_fault_text(c)}"
    if c.get("pidfile_error"):
        return (detail + "  (pidfile damaged)").lstrip()
    if c.get("reason") and c["pid"] is not None:
        at = c.get("signalled_at") if c.get("last_signal") else None
        stamp = f" at {when(at, now)}" if isinstance(at, int | float) else ""
        detail += f"  ({c['reason']}{stamp})"
    return detail.lstrip()
