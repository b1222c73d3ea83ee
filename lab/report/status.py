"""`ecgpipe status`: each component's pid and state, each link's fault, each device's online state."""

from __future__ import annotations

from typing import Any

from ecgcore.files import read_json
from ecgcore.modes import LINKS
from lab.nemesis.proxyctl import link_state
from lab.stack.control import proxy_port
from lab.stack.procs import RUNNING
from lab.stack.statedir import COMPONENTS, StackConfig, StateDir
from lab.units import format_duration


def status(sd: StateDir) -> dict[str, Any]:
    cfg = sd.config()
    doc: dict[str, Any] = {"state_dir": str(sd.root), "delivery": cfg.delivery}
    for name in COMPONENTS:
        comp = sd.component(name)
        info = comp.info() or {}
        doc[name] = {"pid": info.get("pid"), "state": comp.state(), "last_signal": info.get("last_signal"),
                     "log": str(comp.logfile)}
    for link in LINKS:
        doc[f"proxy-{link}"].update(_link(sd, cfg, link, doc[f"proxy-{link}"]))
    doc["broker"].update({"host": cfg.host, "port": cfg.port, "max_queued": cfg.max_queued,
                          "persistence": cfg.persistence})
    fleet = read_json(sd.devices_json) or {}
    fleet_alive = doc["devices"]["state"] == RUNNING and fleet.get("pid") == doc["devices"]["pid"]
    devs = fleet.get("devices", {})
    doc["devices"]["count"] = cfg.devices
    doc["devices"]["online"] = sum(1 for d in devs.values() if d.get("online")) if fleet_alive else 0
    doc["devices"]["updated_at"] = fleet.get("updated_at")
    doc["device_states"] = {
        d: {"online": bool(v.get("online")) and fleet_alive, "since": v.get("since"),
            "reconnects": v.get("reconnects", 0), "boot_epoch": v.get("boot_epoch")}
        for d, v in sorted(devs.items())
    }
    return doc


def _link(sd: StateDir, cfg: StackConfig, link: str, comp: dict[str, Any]) -> dict[str, Any]:
    """A link proxy's ports, current fault and counters; no fault unless the proxy runs."""
    st = link_state(sd.root, link) or {}
    live = comp["state"] == RUNNING and st.get("pid") == comp["pid"]
    conns = st.get("connections") or {}
    return {"listen_port": proxy_port(cfg, link), "upstream_port": cfg.port,
            "fault": st.get("fault") if live else None,
            "connections": conns.get("open", 0) if live else 0,
            "bytes": st.get("bytes"), "updated_at": st.get("updated_at")}


def _fault_text(c: dict[str, Any]) -> str:
    f = c.get("fault")
    if not f:
        return "clean"
    kind = str(f.get("fault", "?"))
    text = str(f.get("describe") or kind)
    if kind in ("cut", "blackhole"):  # stand out in the table
        text = kind.upper() + text[len(kind):]
    if f.get("phase"):
        text += f", now {f['phase']}"
    left = f.get("remaining_s")
    if left is not None:
        text += f", {format_duration(round(left, 1)) if left >= 0.05 else '0s'} left"
    return text


def format_status(doc: dict[str, Any], limit: int = 30) -> str:
    lines = [f"stack in {doc['state_dir']} (delivery {doc['delivery']})",
             f"{'component':<14}{'pid':>8}  {'state':<9}detail"]
    for name in COMPONENTS:
        c = doc[name]
        detail = ""
        if name == "broker":
            detail = f"{c['host']}:{c['port']}  max_queued {c['max_queued']}"
        elif name == "devices":
            detail = f"{c['online']}/{c['count']} online"
        elif name.startswith("proxy-"):
            detail = (f":{c['listen_port']} → :{c['upstream_port']}  {c['connections']} conn  "
                      f"{_fault_text(c)}")
        if c.get("last_signal") and c["state"] != RUNNING:
            detail += f"  (last signal {c['last_signal']})"
        lines.append(f"{name:<14}{c['pid'] or '-':>8}  {c['state']:<9}{detail}")
    items = list(doc["device_states"].items())
    if items:
        shown = ", ".join(f"{d} {'online' if v['online'] else 'OFFLINE'}" for d, v in items[:limit])
        lines.append("devices: " + shown + (f", ... {len(items) - limit} more" if len(items) > limit else ""))
    return "\n".join(lines)
