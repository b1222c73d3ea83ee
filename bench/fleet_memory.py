"""Memory per simulated device, and where it goes: one fleet in this process against a real
Mosquitto, tracemalloc's view grouped by source file, at two fleet sizes.

    .venv/bin/python -m bench.fleet_memory [--devices 500,1500] [--seconds 20] [--insecure]
                                           [--delivery broker-ack|end-to-end] [--top 15]

For each size: a fresh broker (secure like `ecgpipe up`: logins, TLS, signed readings;
`--insecure`: anonymous, plaintext), the fleet started in a thread, `--seconds` of recording
(broker-ack: each reading leaves the device at its PUBACK, as in steady state with ingest
running; `--delivery end-to-end` with no ingest keeps them in flight, as in an outage), then
the Python heap that tracemalloc sees (by file, and the fleet's own lines) and the process's
RSS growth over the fleet's start. Per device at the margin is the difference between the two
sizes, divided by the difference in devices: the fixed cost of a process (interpreter, numpy,
paho, ssl) cancels out. No ingest runs. tracemalloc slows the fleet down; the figures are sizes, not speeds.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import tempfile
import threading
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

from devices.fleet import Fleet, FleetConfig
from ecgcore.modes import Delivery
from lab.provision.provision import provision
from lab.stack.broker import BrokerSecurity, BrokerSettings, RunningBroker
from lab.stack.ports import free_port


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(n: int, seconds: float, secure: bool, top: int, delivery: Delivery) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ecgpipe-bench-mem-") as tmp:
        root = Path(tmp)
        ids = [f"hc-{i:04d}" for i in range(n)]
        security = None
        if secure:
            provision(root / "secrets", ids)
            security = BrokerSecurity(root / "secrets")
        port = free_port()
        broker = RunningBroker(BrokerSettings(port=port, data_dir=root / "mq", log_file=root / "mq.log",
                                              security=security),
                               root / "mosquitto.conf").start()
        cfg = FleetConfig(state_dir=root / "state", host="127.0.0.1", port=port, devices=n,
                          delivery=delivery, history=False,
                          secrets_dir=root / "secrets" if secure else None)
        rss0 = rss_kb()
        tracemalloc.start(1)
        fleet = Fleet(cfg, out=io.StringIO())
        thread = threading.Thread(target=fleet.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 120
            while not (fleet.running and fleet.hub.online == n) and time.monotonic() < deadline:
                time.sleep(0.2)
            online = fleet.hub.online
            time.sleep(seconds)
            snap = tracemalloc.take_snapshot()
            rss1 = rss_kb()
        finally:
            tracemalloc.stop()
            fleet.request_stop()
            thread.join(30)
            broker.stop()
        by_file: dict[str, int] = defaultdict(int)
        for stat in snap.statistics("filename"):
            name = stat.traceback[0].filename
            short = name.split("site-packages/")[-1] if "site-packages/" in name else name.split("/main/")[-1]
            by_file[short] += stat.size
        lines = [(f"{s.traceback[0].filename.split('/')[-1]}:{s.traceback[0].lineno}", s.size)
                 for s in snap.statistics("lineno")[:top]]
        return {"devices": n, "online": online, "heap_kb": round(sum(by_file.values()) / 1024),
                "rss_growth_kb": rss1 - rss0, "rss_kb": rss1,
                "by_file_bytes": dict(by_file),
                "top_lines_kb": {k: round(v / 1024, 1) for k, v in lines}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", default="500,1500")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--insecure", action="store_true")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--delivery", choices=("broker-ack", "end-to-end"), default="broker-ack")
    a = ap.parse_args()
    sizes = [int(x) for x in a.devices.split(",")]
    if len(sizes) != 2 or not 0 < sizes[0] < sizes[1]:
        ap.error("--devices takes two sizes, the smaller first")
    runs = [measure(n, a.seconds, not a.insecure, a.top, Delivery(a.delivery)) for n in sizes]
    small, big = runs
    d = big["devices"] - small["devices"]
    files = big["by_file_bytes"]
    per_file = {k: round((files[k] - small["by_file_bytes"].get(k, 0)) / d / 1024, 2) for k in files}
    per_file = dict(sorted(per_file.items(), key=lambda kv: -kv[1])[:a.top])
    for r in runs:
        r["by_file_kb"] = {k: round(v / 1024) for k, v in
                           sorted(r.pop("by_file_bytes").items(), key=lambda kv: -kv[1])[:a.top]}
    print(json.dumps({"runs": runs, "margin_per_device_kb": {
        "heap": round((big["heap_kb"] - small["heap_kb"]) / d, 1),
        "rss": round((big["rss_growth_kb"] - small["rss_growth_kb"]) / d, 1),
        "heap_by_file": per_file}}, indent=1))


if __name__ == "__main__":
    main()
