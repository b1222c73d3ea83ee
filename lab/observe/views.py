"""rich renderables of `status` and `inspect devices`, for the refreshing views (live.py).

They read the documents of lab.report.status.status(sd) and lab.report.inspection.inspect_devices
(sd, now), and colour what needs a look: components not running (stopped: yellow; exited or dead:
red), links with a fault (cut or blackhole: red; slower, lossy or flapping: yellow), OFFLINE
devices (red), devices whose outbox holds readings (yellow) or evicted some (red). On a pipe or
with NO_COLOR, live.watch renders them without colour.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from lab.stack.statedir import COMPONENTS
from lab.timefmt import ago

Doc = dict[str, Any]
_STATE_STYLE = {"running": "green", "stopped": "yellow"}  # anything else (exited): red
_HARD_FAULTS = ("cut", "blackhole")


def _state(c: Doc) -> Text:
    state = str(c.get("state", "?"))
    why = c.get("reason") or (f"last signal {c['last_signal']}" if c.get("last_signal") else None)
    text = state + (f" ({why})" if why and state != "running" else "")
    if c.get("pidfile_error"):
        text += " (pidfile damaged)"
    return Text(text, style=_STATE_STYLE.get(state, "bold red"))


def _fault(c: Doc) -> Text:
    f = c.get("fault")
    if not f:
        return Text("clean", style="green")
    kind = str(f.get("fault", "?"))
    hard = kind in _HARD_FAULTS
    text = str(f.get("describe") or kind)
    if hard and text.startswith(kind):  # stands out, as in format_status
        text = kind.upper() + text[len(kind):]
    if f.get("phase"):
        text += f", now {f['phase']}"
    left = f.get("remaining_s")
    if isinstance(left, int | float):
        text += f", {max(left, 0.0):.0f} s left"
    return Text(text, style="bold red" if hard else "yellow")


def _detail(name: str, c: Doc) -> RenderableType:
    if name == "broker" and c.get("port") is not None:
        return f"{c.get('host')}:{c.get('port')}  max_queued {c.get('max_queued')}"
    if name == "devices":
        online, total = c.get("online", 0), c.get("count", 0)
        return Text(f"{online}/{total} online", style="green" if online == total else "bold red")
    if name.startswith("proxy-"):
        link = Text(f":{c.get('listen_port')} → :{c.get('upstream_port')}  {c.get('connections', 0)} conn  ")
        return link.append_text(_fault(c))
    return ""


def status_table(doc: Doc, limit: int = 30) -> RenderableType:
    """The `status` document as a table of components, then the devices that are offline."""
    table = Table(title=f"stack in {doc.get('state_dir')} (delivery {doc.get('delivery')})",
                  title_justify="left")
    for col in ("component", "pid", "state", "detail"):
        table.add_column(col, justify="right" if col == "pid" else "left")
    listed = doc.get("components")
    names: list[str] = [str(n) for n in listed] if isinstance(listed, list) else list(COMPONENTS)
    for name in names:
        c = doc.get(name) or {}
        table.add_row(name, str(c.get("pid") or "-"), _state(c), _detail(name, c))
    parts: list[RenderableType] = [table]
    states: dict[str, Doc] = doc.get("device_states") or {}
    offline = [d for d, v in states.items() if not v.get("online")]
    if states:
        line = Text(f"devices: {len(states) - len(offline)}/{len(states)} online")
        if offline:
            more = f", ... {len(offline) - limit} more" if len(offline) > limit else ""
            line.append("; OFFLINE: ").append(", ".join(offline[:limit]) + more, style="bold red")
        parts.append(line)
    warnings = [doc.get("stack_error"), doc.get("devices_error") and
                f"devices online unknown: {doc['devices_error']}"]
    warnings += [(doc.get(n) or {}).get("pidfile_error") for n in names]
    parts += [Text(f"warning: {w}", style="yellow") for w in warnings if w]
    return Group(*parts)


def devices_table(doc: Doc, limit: int = 50) -> RenderableType:
    """The `inspect devices` document: one row per device's outbox, then the totals."""
    cols = ("device_id", "buffered", "also_stored", "oldest_seq", "newest_seq", "oldest_age", "bytes",
            "evicted")
    table = Table()
    for col in cols:
        table.add_column(col, justify="left" if col == "device_id" else "right")
    rows: list[Doc] = doc.get("devices") or []
    for r in rows[:limit]:
        age = r.get("oldest_age_s")
        cells = {**r, "oldest_age": None if age is None else ago(age)}
        style = "bold red" if r.get("evicted") else "yellow" if r.get("buffered") else None
        table.add_row(*("-" if cells.get(c) is None else str(cells.get(c)) for c in cols), style=style)
    t = doc.get("totals") or {}
    lines: list[RenderableType] = [table]
    if len(rows) > limit:
        lines.append(Text(f"... {len(rows) - limit} more (use --json)"))
    lines.append(Text(f"total buffered {t.get('buffered', 0)} readings ({t.get('bytes', 0)} bytes), "
                      f"evicted {t.get('evicted', 0)}"))
    if t.get("also_stored"):
        lines.append(Text(f"{t['also_stored']} of them already stored by ingest: the device stopped before "
                          "it saw the confirmation (or it is on its way); report counts them as stored"))
    return Group(*lines)
