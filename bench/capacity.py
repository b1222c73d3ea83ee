"""Fleet capacity: the most devices (250 Hz, 1-s chunks, end-to-end mode) this machine
sustains in real time with zero loss and p99 capture-end→store latency ≤ 2 s, with broker,
fleet and ingest all running here.

    .venv/bin/python -m bench.capacity [--devices 500,1000,2000,3000] [--seconds 40]

For each fleet size it runs `ecgpipe up` in a fresh state dir, lets it run, stops the fleet
gracefully, waits for ingest to go quiet and reads the ledger. It also reports each
process's CPU share, which is what limits the figure on this 2-core machine. The baseline
in the same run is the smallest fleet: its per-device CPU cost is the ratio's denominator.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import NotRequired, TypedDict

from bench.procs import cpu_seconds
from ecgcore.modes import Delivery
from ecgcore.waiting import wait_until
from lab.report.summary import build_report
from lab.stack import control as stack
from lab.stack.levels import Stable, generated_total
from lab.stack.statedir import StackConfig, StateDir


class RunResult(TypedDict):
    """One fleet size's run, as printed (one JSON line per run)."""

    devices: int
    ok: bool
    up_s: float
    readings_per_s: float
    realtime_ratio: float
    lost: int
    evicted: int
    buffered_at_stop: int
    duplicates: int
    p50_s: float | None
    p99_s: float | None
    cpu_cores: dict[str, float]  # CPU seconds per real second, per process
    cpu_per_device_vs_smallest: NotRequired[float]  # added once every run is done


def run_one(n: int, seconds: float, root: Path, proxies: bool, secure: bool = True) -> RunResult:
    sd = StateDir(root / f"n{n}{'' if secure else '-insecure'}")
    cfg = StackConfig(devices=n, delivery=Delivery.END_TO_END.value, max_queued=100_000, ack_timeout=10.0,
                      outbox_capacity=5000, proxies=proxies, secure=secure, tls=secure)
    t_up = time.monotonic()
    stack.up(sd, cfg)
    up_s = time.monotonic() - t_up
    names: tuple[str, ...] = ("broker", "ingest", "analysis", "devices")
    names += ("proxy-ingest", "proxy-devices") if proxies else ()
    pids = {c: sd.component(c).pid() for c in names}
    cpu0 = {c: cpu_seconds(p) for c, p in pids.items()}
    g0, t0 = generated_total(sd), time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        time.sleep(0.5)
    g1, t1 = generated_total(sd), time.monotonic()
    cpu = {c: round((cpu_seconds(p) - cpu0[c]) / (t1 - t0), 3) for c, p in pids.items()}
    stack.kill(sd, "devices", "TERM")
    wait_until(Stable(sd, 2.0), 60, poll_s=0.2)
    stack.down(sd)
    rep = build_report(sd)
    t = rep["totals"]
    rate = (g1 - g0) / (t1 - t0)
    lat = rep["latency_s"]
    ok = t["lost"] == 0 and t["evicted"] == 0 and lat["p99"] is not None and lat["p99"] <= 2.0 \
        and rate >= 0.97 * n
    return {"devices": n, "ok": ok, "up_s": round(up_s, 1), "readings_per_s": round(rate, 1),
            "realtime_ratio": round(rate / n, 3), "lost": t["lost"], "evicted": t["evicted"],
            "buffered_at_stop": t["buffered"], "duplicates": t["duplicates"], "p50_s": lat["p50"],
            "p99_s": lat["p99"], "cpu_cores": cpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", default="500,1000,2000,3000")
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--via-proxy", action="store_true",
                   help="route ingest and fleet through the lab's TCP proxies (as `ecgpipe up` does)")
    p.add_argument("--insecure", action="store_true",
                   help="anonymous plaintext MQTT, nothing signed (`ecgpipe up --insecure`), to "
                        "compare with the secure default (logins, mutual TLS, signatures)")
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ecgpipe-bench-cap-"))
    results = []
    for n in [int(x) for x in a.devices.split(",")]:
        r = run_one(n, a.seconds, root, a.via_proxy, secure=not a.insecure)
        results.append(r)
        print(json.dumps(r), flush=True)
    base = results[0]
    base_cpu = sum(base["cpu_cores"].values()) / base["devices"]
    for r in results:
        per_dev = sum(r["cpu_cores"].values()) / r["devices"]
        r["cpu_per_device_vs_smallest"] = round(per_dev / base_cpu, 3)
    best = max((r["devices"] for r in results if r["ok"]), default=0)
    print(json.dumps({"max_devices_sustained": best, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
