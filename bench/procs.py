"""A running stack's processes by group (fleet, ingest, broker, postgres, analysis, proxies), each
with its descendants (a fleet's slices, PostgreSQL's backends), and their CPU time and RSS read
from /proc. For the benchmarks only."""

from __future__ import annotations

import os
from pathlib import Path

from lab.stack.statedir import StateDir

HZ = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") / 1024


def group_of(component: str) -> str:
    if component == "devices":
        return "fleet"
    if component.startswith("ingest"):
        return "ingest"
    if component == "broker" or component.startswith("nats-"):
        return "broker"
    if component.startswith("proxy-"):
        return "proxies"
    return component


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def pids_by_group(sd: StateDir) -> dict[str, list[int]]:
    kids = _children()
    groups: dict[str, list[int]] = {}
    for name in sd.component_names():
        pid = sd.component(name).pid()
        if pid:
            groups.setdefault(group_of(name), []).extend(_tree(pid, kids))
    return groups


def _stat(pid: int) -> list[str]:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split())
    except (OSError, IndexError):
        return []


def cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) of one live process; 0 for none or a gone one."""
    f = _stat(pid) if pid else []
    return (int(f[11]) + int(f[12])) / HZ if len(f) > 12 else 0.0


def group_cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds of each group's live processes."""
    return {g: sum(map(cpu_seconds, pids)) for g, pids in groups.items()}


def group_rss_kb(groups: dict[str, list[int]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for g, pids in groups.items():
        out[g] = sum(int(f[21]) * PAGE_KB for f in map(_stat, pids) if len(f) > 21)
    return out
