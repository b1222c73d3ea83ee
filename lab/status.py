"""`ecgpipe status`: each component's pid and state, and each device's online state."""

from __future__ import annotations

from typing import Any

from ecgcore.files import read_json
from lab.procs import RUNNING
from lab.statedir import StateDir


def status(sd: StateDir) -> dict[str, Any]:
    cfg = sd.config()
    doc: dict[str, Any] = {"state_dir": str(sd.root), "delivery": cfg.delivery}
    for name in ("broker", "ingest", "devices", "watch"):
        comp = sd.component(name)
        info = comp.info() or {}
        doc[name] = {"pid": info.get("pid"), "state": comp.state(), "last_signal": info.get("last_signal"),
                     "log": str(comp.logfile)}
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


def format_status(doc: dict[str, Any], limit: int = 30) -> str:
    lines = [f"stack in {doc['state_dir']} (delivery {doc['delivery']})",
             f"{'component':<10}{'pid':>8}  {'state':<9}detail"]
    for name in ("broker", "ingest", "devices", "watch"):
        c = doc[name]
        detail = ""
        if name == "broker":
            detail = f"{c['host']}:{c['port']}  max_queued {c['max_queued']}"
        elif name == "devices":
            detail = f"{c['online']}/{c['count']} online"
        if c.get("last_signal") and c["state"] != RUNNING:
            detail += f"  (last signal {c['last_signal']})"
        lines.append(f"{name:<10}{c['pid'] or '-':>8}  {c['state']:<9}{detail}")
    items = list(doc["device_states"].items())
    if items:
        shown = ", ".join(f"{d} {'online' if v['online'] else 'OFFLINE'}" for d, v in items[:limit])
        lines.append("devices: " + shown + (f", ... {len(items) - limit} more" if len(items) > limit else ""))
    return "\n".join(lines)
