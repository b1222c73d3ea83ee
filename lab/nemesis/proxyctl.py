"""The CLI's side of a link proxy: write a fault to its control file, wait until it is applied.

`ecgpipe cut|heal|slow|flap LINK` call `command()`, which writes the fault (with the next
`seq`) atomically to `proxy/<link>.json` and waits until the proxy's state file reports that
seq as applied, so a command returns only once the fault is in effect. One line says what
happened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecgcore.clock import Clock
from ecgcore.files import read_json, write_json_atomic
from ecgcore.modes import LINKS
from ecgcore.waiting import wait_until
from lab.errors import ComponentError, ConfigError
from lab.nemesis.faults import LinkFault
from lab.stack.procs import RUNNING
from lab.stack.statedir import StateDir, proxy_control_path, proxy_state_path
from lab.units import format_duration


def proxy_component(link: str) -> str:
    if link not in LINKS:
        raise ConfigError(f"unknown link {link!r}; use {' or '.join(LINKS)}")
    return f"proxy-{link}"


def link_state(root: Path, link: str) -> dict[str, Any] | None:
    """The proxy's last written state, or None if it never wrote one."""
    doc = read_json(proxy_state_path(root, link))
    return doc if isinstance(doc, dict) else None


def upstreams_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every upstream of a proxy's state with its counters (`upstreams`); a state file written
    before proxies had several upstreams gives its one `upstream`."""
    ups = state.get("upstreams")
    if isinstance(ups, list) and all(isinstance(u, dict) for u in ups):
        return ups
    one = state.get("upstream")
    return [one] if isinstance(one, dict) else []


def command(sd: StateDir, link: str, fault_kind: str, clock: Clock, deadline_s: float = 5.0,
            **params: Any) -> str:
    """Apply one fault (or heal) to a stack's link; returns the one-line account of what it did."""
    comp = sd.component(proxy_component(link))
    if comp.state() != RUNNING:
        raise ComponentError(f"the {link} link's proxy ({comp.name}) is {comp.state()}; "
                             f"start the stack with `ecgpipe up`")
    fault, before, after = send(sd.root, link, fault_kind, clock, deadline_s, **params)
    return describe(link, fault, before, after)


def send(root: Path, link: str, fault_kind: str, clock: Clock, deadline_s: float = 5.0,
         **params: Any) -> tuple[LinkFault, dict[str, Any], dict[str, Any]]:
    """Write the fault with the next seq and wait until the proxy reports it applied.
    Returns the fault and the proxy's state before and after."""
    before = link_state(root, link) or {}
    previous = read_json(proxy_control_path(root, link)) or {}
    seq = max(int(previous.get("seq") or 0), int(before.get("control_seq") or 0)) + 1
    fault = LinkFault(kind=fault_kind, seq=seq, issued_at=round(clock.now(), 3), **params)
    write_json_atomic(proxy_control_path(root, link), fault.to_json())
    def applied() -> bool:
        return int((link_state(root, link) or {}).get("control_seq") or 0) >= seq

    if not wait_until(applied, deadline_s, poll_s=0.02):
        raise ComponentError(f"the {link} proxy did not apply the command within {deadline_s:g} s; "
                             f"see its log in {root / 'proxy'}")
    after = link_state(root, link) or {}
    if after.get("control_error"):
        raise ComponentError(f"the {link} proxy rejected the command: {after['control_error']}")
    return fault, before, after


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe(link: str, fault: LinkFault, before: dict[str, Any], after: dict[str, Any]) -> str:
    applied = after.get("last_apply") or {}
    reset = int(applied.get("reset") or 0)
    lst = after.get("listen") or {}
    ups = ", ".join(f"{u.get('host')}:{u.get('port')}" for u in upstreams_of(after)) or "?"
    where = f"{lst.get('host')}:{lst.get('port')} → {ups}"
    until = f"for {format_duration(fault.for_s)}" if fault.for_s else f"until `ecgpipe heal {link}`"
    replaced = (before.get("fault") or {}).get("fault")
    note = f" (replaces {replaced})" if replaced and fault.kind != "heal" else ""
    if fault.kind == "heal":
        if not replaced:
            return f"the {link} link had no fault; it forwards cleanly ({where})"
        past = (after.get("past_faults") or [{}])[-1]
        took = ""
        if past.get("started_at") is not None and past.get("ended_at") is not None:
            took = f" after {format_duration(max(0.0, past['ended_at'] - past['started_at']))}"
        extra = f"; reset {_plural(reset, 'connection')} that lost bytes in the blackhole" if reset else ""
        return f"healed the {link} link ({where}): ended {replaced}{took}{extra}"
    if fault.kind == "cut":
        return (f"cut the {link} link ({where}): reset {_plural(reset, 'connection')}; "
                f"new connections are reset {until}{note}")
    open_now = (after.get("connections") or {}).get("open", 0)
    if reset and fault.kind == "slow":
        note += f"; reset {_plural(reset, 'connection')} that lost bytes in the blackhole"
    if fault.kind == "blackhole":
        return (f"blackholed the {link} link ({where}): {_plural(open_now, 'connection')} stay open, "
                f"every byte is dropped both ways {until}{note}")
    if fault.kind == "slow":
        return f"slowed the {link} link ({where}): {fault.slowness()}, {until}{note}"
    return (f"the {link} link ({where}) flaps: down {format_duration(fault.down_s)}, up "
            f"{format_duration(fault.up_s)}, starting down (reset {_plural(reset, 'connection')}), "
            f"{until}{note}")
