"""Scale side by side (issue 13): the most devices each stack sustains in real time, and how fast
each drains the backlog of a 60-s ingest outage, in one run on this machine.

    .venv/bin/python -m bench.scale capacity [--stacks default,mosquitto-pg,nats-pg]
                                             [--devices 1000,2000,3000] [--seconds 30] [--fleet-procs 1]
    .venv/bin/python -m bench.scale drain [--stacks ...] [--devices 1000] [--outage 60]

The stacks (docs/scale.md): `default` is Mosquitto, one ingest process and SQLite;
`mosquitto-pg` is Mosquitto, 3 ingest workers on a shared subscription and PostgreSQL;
`nats-pg` is the 3-node NATS JetStream cluster, 3 workers on its durable consumer and
PostgreSQL. All run end to end (the mode that loses nothing) and --insecure unless --secure is
given, like for like. The default stack's secure figures are in docs/benchmarks.md.

capacity: per stack, fleet sizes in increasing order until the first that fails (zero loss,
p99 capture-end→store latency ≤ 2 s over the whole run, ramp included, as bench/capacity.py
judges; `window_p99_s` is the p99 of the readings captured in the measurement window alone,
≥ 0.97 of real time). Reports each process group's CPU
(cores) and the fleet's memory per device (its processes' RSS ÷ devices).

drain: per stack, `--devices` devices run 15 s, every ingest worker is killed -9 for
`--outage` s (the devices keep recording; end to end, what is not confirmed stays in their
outboxes or waits at the broker), then started again; the drain rate is the backlog at the
restart ÷ the time until every device is caught up. The ratio is against the default stack's
rate in the same run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.procs import group_cpu, group_rss_kb, pids_by_group
from ecgcore.modes import Delivery
from ecgcore.waiting import wait_until
from ingest.store_view import latencies
from lab.report.summary import build_report, latency_quantiles
from lab.stack import control as stack
from lab.stack.levels import Stable, caught_up, generated_total, stored_total
from lab.stack.statedir import StackConfig, StateDir

STACKS: dict[str, dict[str, Any]] = {
    "default": {},
    "mosquitto-pg": {"ingest_workers": 3, "store": "postgres"},
    "nats-pg": {"broker": "nats-cluster", "ingest_workers": 3, "store": "postgres"},
}


def config(stack_name: str, n: int, fleet_procs: int, secure: bool = False,
           proxies: bool = True) -> StackConfig:
    base = StackConfig(devices=n, delivery=Delivery.END_TO_END.value, max_queued=100_000,
                       ack_timeout=10.0, outbox_capacity=5000, secure=secure, tls=secure,
                       fleet_procs=fleet_procs, proxies=proxies)
    return replace(base, **STACKS[stack_name])


def _steady(sd: StateDir, seconds: float) -> dict[str, Any]:
    """Readings/s generated, CPU per process group and the fleet's RSS over `seconds`."""
    pids = pids_by_group(sd)
    cpu0 = group_cpu(pids)
    g0, t0, wall0 = generated_total(sd), time.monotonic(), time.time()
    rss: list[float] = []
    while time.monotonic() < t0 + seconds:
        time.sleep(0.5)  # a measurement window, not a wait for a condition
        rss.append(group_rss_kb(pids_by_group(sd)).get("fleet", 0.0))
    g1, t1, wall1 = generated_total(sd), time.monotonic(), time.time()
    cpu1 = group_cpu(pids_by_group(sd))
    cores = {g: round((cpu1.get(g, 0.0) - cpu0.get(g, 0.0)) / (t1 - t0), 3) for g in cpu1}
    return {"rate": (g1 - g0) / (t1 - t0), "cpu_cores": cores, "fleet_rss_kb": max(rss, default=0.0),
            "window": (wall0, wall1)}  # real time is simulated time at speed 1


def run_capacity(root: Path, stack_name: str, n: int, seconds: float, fleet_procs: int,
                 secure: bool = False, proxies: bool = True) -> dict[str, Any]:
    sd = StateDir(root / f"cap-{stack_name}-{n}-p{fleet_procs}{'-secure' if secure else ''}"
                         f"{'' if proxies else '-direct'}")
    t_up = time.monotonic()
    stack.up(sd, config(stack_name, n, fleet_procs, secure, proxies))
    up_s = time.monotonic() - t_up
    try:
        wait_until(lambda: caught_up(sd, slack=5), 120, poll_s=1.0)  # the ramp's backlog delivered
        m = _steady(sd, seconds)
        stack.kill(sd, "devices", "TERM")
        wait_until(Stable(sd, 2.0), 120, poll_s=0.2)
    finally:
        stack.down(sd)
    rep = build_report(sd)
    t, lat = rep["totals"], rep["latency_s"]
    steady = latency_quantiles(latencies(sd.ingest_db, from_end_of_chunk=True, captured_between=m["window"]))
    ok = t["lost"] == 0 and t["evicted"] == 0 and lat["p99"] is not None and lat["p99"] <= 2.0 \
        and m["rate"] >= 0.97 * n
    return {"stack": stack_name, "secure": secure, "proxies": proxies, "devices": n,
            "fleet_procs": fleet_procs, "ok": ok,
            "up_s": round(up_s, 1), "readings_per_s": round(m["rate"], 1),
            "realtime_ratio": round(m["rate"] / n, 3), "lost": t["lost"], "evicted": t["evicted"],
            "duplicates": t["duplicates"], "p50_s": lat["p50"], "p99_s": lat["p99"],
            "window_p99_s": steady["p99"], "cpu_cores": m["cpu_cores"],
            "fleet_rss_mb": round(m["fleet_rss_kb"] / 1024, 1),
            "fleet_kb_per_device": round(m["fleet_rss_kb"] / n, 1)}


def run_drain(root: Path, stack_name: str, n: int, outage_s: float) -> dict[str, Any]:
    sd = StateDir(root / f"drain-{stack_name}-{n}")
    stack.up(sd, config(stack_name, n, 1))
    try:
        wait_until(lambda: caught_up(sd, slack=5), 120, poll_s=1.0)
        stack.kill(sd, "ingest", "KILL")
        t_kill = time.monotonic()
        wait_until(lambda: time.monotonic() - t_kill >= outage_s, outage_s + 5, poll_s=0.5)
        backlog = generated_total(sd) - stored_total(sd)
        s0, t0 = stored_total(sd), time.monotonic()
        stack.start(sd, "ingest")
        wait_until(lambda: caught_up(sd, slack=5), 600, poll_s=0.5)
        t1, s1 = time.monotonic(), stored_total(sd)
        stack.kill(sd, "devices", "TERM")
        wait_until(Stable(sd, 2.0), 120, poll_s=0.2)
    finally:
        stack.down(sd)
    rep = build_report(sd)
    return {"stack": stack_name, "devices": n, "outage_s": outage_s, "backlog_at_restart": backlog,
            "drain_s": round(t1 - t0, 1), "stored_while_draining": s1 - s0,
            "drain_readings_per_s": round((s1 - s0) / (t1 - t0), 1),
            "lost": rep["totals"]["lost"], "duplicates": rep["totals"]["duplicates"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("capacity", "drain"))
    p.add_argument("--stacks", default=",".join(STACKS))
    p.add_argument("--devices", default=None, help="capacity: sizes, increasing; drain: one size")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--fleet-procs", type=int, default=1)
    p.add_argument("--outage", type=float, default=60.0)
    p.add_argument("--no-proxies", action="store_true",
                   help="capacity: fleet and ingest connect to the broker directly, without the lab's "
                        "fault proxies (as a deployment would; `up --no-proxy`)")
    p.add_argument("--secure", action="store_true",
                   help="capacity: logins, mutual TLS and signatures (the default stack's default); "
                        "not for nats-pg, which has no logins yet")
    p.add_argument("--keep-going", action="store_true",
                   help="capacity: run every size, not only up to the first failure")
    a = p.parse_args()
    stacks = a.stacks.split(",")
    unknown = [s for s in stacks if s not in STACKS]
    if unknown:
        p.error(f"unknown stack {unknown[0]!r}; choose from {', '.join(STACKS)}")
    root = Path(tempfile.mkdtemp(prefix="ecgpipe-bench-scale-"))
    results: list[dict[str, Any]] = []
    for name in stacks:
        if a.what == "drain":
            results.append(run_drain(root, name, int(a.devices or 1000), a.outage))
            print(json.dumps(results[-1]), flush=True)
            continue
        for n in [int(x) for x in (a.devices or "1000,2000,3000").split(",")]:
            results.append(run_capacity(root, name, n, a.seconds, a.fleet_procs, a.secure,
                                        not a.no_proxies))
            print(json.dumps(results[-1]), flush=True)
            if not results[-1]["ok"] and not a.keep_going:
                break
    if a.what == "drain":
        base = next((r["drain_readings_per_s"] for r in results if r["stack"] == "default"), None)
        for r in results:
            r["vs_default"] = round(r["drain_readings_per_s"] / base, 3) if base else None
    else:
        best = {s: max((r["devices"] for r in results if r["stack"] == s and r["ok"]), default=0)
                for s in stacks}
        results.append({"max_devices_sustained": best})
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
