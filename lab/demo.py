"""`ecgpipe demo`: one outage, each delivery mode asked for (all three by default), their
ledgers side by side, and a conclusion drawn only from the modes that ran.

For each mode: start the stack, let readings flow, kill -9 the ingest service for longer
than the broker's queue can hold, show what is buffered where, restart ingest, let the
backlogs drain, stop the devices, and take the ledger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devices import outbox_view as dev_inspect
from ecgcore.clock import SystemClock
from ecgcore.modes import DELIVERY_MODES, Delivery
from ecgcore.waiting import wait_until
from lab.errors import LabError
from lab.history.brokerstats import broker_stats
from lab.report.summary import build_report
from lab.stack import control as stack
from lab.stack.levels import Stable, buffered_total, caught_up, stored_total
from lab.stack.statedir import StackConfig, StateDir

LESSON = {
    Delivery.FIRE_AND_FORGET: "QoS 0: nothing queues for a dead subscriber; the outage is simply gone.",
    Delivery.BROKER_ACK: "QoS 1: the broker PUBACKed every reading, queued the first max_queued, "
                  "then dropped the rest.",
    Delivery.END_TO_END: "QoS 1 + ingest confirmations: readings wait in the device outbox until stored; "
                  "none lost.",
}


def _where(sd: StateDir, base: dict[str, int]) -> str:
    """One line: what is buffered where. The broker's store count also holds retained $SYS and
    status messages, so the queue is shown relative to its level before the outage."""
    devs = dev_inspect.device_summaries(sd.outbox_db)
    b = broker_stats(sd.root)
    held = int(b.get("stored_messages") or 0)
    base.setdefault("store", held)
    return (f"device outboxes {sum(d['buffered'] for d in devs):>4}, "
            f"broker queue {max(0, held - base['store']):>4}, "
            f"broker dropped {b['dropped']:>4}, ingest stored {stored_total(sd):>5}")


def _tiers(sd: StateDir, base: dict[str, int]) -> list[str]:
    devs = dev_inspect.device_summaries(sd.outbox_db)
    now = SystemClock().now()
    ages = [now - d["oldest_captured_at"] for d in devs if d.get("oldest_captured_at") is not None]
    b = broker_stats(sd.root)
    held = max(0, int(b.get("stored_messages") or 0) - base.get("store", 0))
    return [
        f"devices: {sum(d['buffered'] for d in devs)} readings in {len(devs)} outboxes"
        + (f" (oldest {max(ages):.0f} s old)" if ages else "")
        + f", {sum(d['evicted'] for d in devs)} evicted",
        f"broker : about {held} messages queued for the ingest session; {b['dropped']} dropped after PUBACK",
        f"ingest : {sd.component('ingest').state()}; {stored_total(sd)} readings stored",
    ]


def _drained(sd: StateDir, delivery: str, devices: int) -> bool:
    """Every device's newest reading is stored, and (end-to-end) the outboxes are down to
    what is normally in flight."""
    return caught_up(sd) and (not Delivery(delivery).ingest_confirms or buffered_total(sd) <= 2 * devices)


def run_mode(root: Path, delivery: str, devices: int, outage_s: float, max_queued: int,
             say: Callable[[str], None]) -> dict[str, Any]:
    sd = StateDir(root / delivery)
    cfg = StackConfig(devices=devices, delivery=delivery, max_queued=max_queued, ack_timeout=3.0)
    say(f"\n=== {delivery}: {LESSON[Delivery(delivery)]}")
    say(f"[1/5] starting broker (max_queued_messages {max_queued}), ingest and {devices} devices "
        f"in {sd.root}")
    stack.up(sd, cfg, progress=lambda m: say("      " + m))
    try:
        if not wait_until(lambda: stored_total(sd) >= 3 * devices, 30, poll_s=0.25):
            raise LabError("readings did not reach the ingest service; see the logs in " + str(sd.root))
        base: dict[str, int] = {}
        wait_until(lambda: broker_stats(sd.root).get("stored_messages") is not None, 5, poll_s=0.25)
        say(f"      readings flowing: {_where(sd, base)}")
        say(f"[2/5] kill -9 ingest for {outage_s:.0f} s (the broker queue holds {max_queued}; "
            f"{devices} devices make {devices} readings a second)")
        stack.kill(sd, "ingest", "KILL")
        t0 = time.monotonic()
        wait_until(lambda: time.monotonic() - t0 >= outage_s, outage_s + 1, poll_s=0.25,
                   tick=lambda el: say(f"      outage {el:4.0f}/{outage_s:.0f} s: {_where(sd, base)}"))
        say("[3/5] what is buffered where, with ingest still dead (ecgpipe inspect devices|broker|ingest):")
        for line in _tiers(sd, base):
            say("      " + line)
        say("[4/5] restarting ingest; draining the backlogs")
        stack.start(sd, "ingest")
        t1 = time.monotonic()
        drained = wait_until(lambda: _drained(sd, delivery, devices), 90, poll_s=0.25,
                             tick=lambda el: say(f"      draining {el:4.0f} s: {_where(sd, base)}"))
        say(f"      {'drained' if drained else 'NOT fully drained'} after {time.monotonic() - t1:.1f} s")
        say("[5/5] stopping the devices (SIGTERM) and taking the ledger")
        stack.kill(sd, "devices", "TERM")
        wait_until(Stable(sd), 15, poll_s=0.25)
    finally:
        stack.down(sd)
    rep = build_report(sd)
    t = rep["totals"]
    say(f"      generated {t['generated']}, stored {t['stored']}, buffered {t['buffered']}, "
        f"evicted {t['evicted']}, lost {t['lost']} (broker dropped {rep['broker']['dropped']})")
    return rep


def side_by_side(reports: dict[str, dict[str, Any]]) -> str:
    modes = list(reports)
    rows: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
        ("generated", lambda r: r["totals"]["generated"]),
        ("stored", lambda r: r["totals"]["stored"]),
        ("duplicates", lambda r: r["totals"]["duplicates"]),
        ("buffered on device", lambda r: r["totals"]["buffered"]),
        ("evicted by device", lambda r: r["totals"]["evicted"]),
        ("LOST", lambda r: r["totals"]["lost"]),
        ("broker dropped", lambda r: r["broker"]["dropped"]),
        ("latency p50 (s)", lambda r: r["latency_s"]["p50"]),
        ("latency p99 (s)", lambda r: r["latency_s"]["p99"]),
        ("identity holds", lambda r: "yes" if r["balanced"] else "NO"),
    ]
    w = max(18, *(len(m) + 2 for m in modes))
    lines = [f"{'':<20}" + "".join(f"{m:>{w}}" for m in modes)]
    for label, get in rows:
        lines.append(f"{label:<20}" + "".join(f"{get(reports[m])!s:>{w}}" for m in modes))
    return "\n".join(lines)


def conclusion(reports: dict[str, dict[str, Any]]) -> list[str]:
    """What the runs showed, mode by mode, from their ledgers: nothing about a mode not run."""
    lines = []
    for mode, rep in reports.items():
        t, dropped = rep["totals"], rep["broker"]["dropped"]
        if mode == Delivery.FIRE_AND_FORGET:
            lines.append(f"fire-and-forget lost {t['lost']} of {t['generated']} readings: QoS 0 "
                         f"queues nothing for a dead subscriber.")
        elif mode == Delivery.BROKER_ACK:
            lines.append(f"broker-ack: every reading was PUBACKed, so the devices deleted it; the broker "
                         f"then dropped {dropped} and {t['lost']} were lost. A broker's PUBACK is not "
                         f"storage." if t["lost"] or dropped else
                         "broker-ack lost nothing this time: the outage fitted the broker's queue "
                         "(try a longer --outage or a smaller --max-queued).")
        elif mode == Delivery.END_TO_END:
            lines.append(f"end-to-end lost {t['lost']}: each reading waited in its device's outbox "
                         f"until ingest confirmed it was stored." if not t["lost"] else
                         f"end-to-end lost {t['lost']} readings: see `ecgpipe report` for why.")
    return lines


def demo_root_of(root: Path) -> Path:
    """Where the demo keeps its runs: DIR/demo/<mode>, or DIR/<mode> when DIR is already a
    `demo` directory (`--state-dir runs/demo` must not give runs/demo/demo/<mode>)."""
    return root if root.name == "demo" else root / "demo"


def run_demo(root: Path, devices: int = 20, outage_s: float = 15.0, max_queued: int = 100,
             modes: list[str] | None = None, as_json: bool = False) -> int:
    modes = modes or list(DELIVERY_MODES)
    demo_root = demo_root_of(root)

    def say(msg: str) -> None:
        if not as_json:
            print(msg, flush=True)

    say(f"ecgpipe demo: {devices} HeartCheck-style devices, 250 Hz, one reading a second each; "
        f"the ingest service dies for {outage_s:.0f} s; modes: {', '.join(modes)}. "
        f"State under {demo_root}")
    reports = {m: run_mode(demo_root, m, devices, outage_s, max_queued, say) for m in modes}
    if as_json:
        print(json.dumps(reports, indent=1, sort_keys=True, default=str))
    else:
        title = "the ledger" if len(modes) == 1 else f"the {len(modes)} ledgers"
        say(f"\n=== {title} (generated = stored + buffered + evicted + lost)")
        say(side_by_side(reports))
        say("")
        for line in conclusion(reports):
            say(line)
        say(f"Inspect any run again: ecgpipe report --state-dir {demo_root}/<mode>")
    return 0 if all(r["balanced"] for r in reports.values()) else 1
