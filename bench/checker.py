"""Checker cost: how long check() takes on a synthetic history, as a ratio to one plain pass
over the same history's events in the same process (sorting every event by key and time).

    .venv/bin/python -m bench.checker [--devices 200] [--readings 1200] [--repeat 3]

The history: every device generates `readings` readings at 1 s, publishes and broker-acks
each; a 10-min ingest outage in the middle, during which the broker drops a third of what it
acks (the dropped counter rises at $SYS samples) and ingest-acks stop; everything else is
stored and ingest-acked. Seeded, so every run checks the same history. The same script runs on
any ecgpipe tree whose `lab.history` and `lab.checker` export these names (to compare two
versions, run it with PYTHONPATH pointing at each).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from lab.checker import check
from lab.history import (
    BrokerAcked,
    BrokerSample,
    FaultWindow,
    Generated,
    History,
    IngestAcked,
    Published,
    Stored,
)

T0 = 1_688_947_200.0  # 2023-07-10


def make_history(devices: int, readings: int, seed: int = 1) -> History:
    rng = random.Random(seed)
    out0, out1 = T0 + readings / 2 - 300, T0 + readings / 2 + 300
    events: list[Any] = []
    stored: list[Stored] = []
    for d in range(devices):
        dev = f"hc-{d:04d}"
        for seq in range(readings):
            t = T0 + seq + rng.random() * 0.1
            events += [Generated(t, dev, 1, seq, t), Published(t + 0.01, dev, 1, seq, 1),
                       BrokerAcked(t + 0.02, dev, 1, seq)]
            inside = out0 <= t < out1
            if inside and rng.random() < 1 / 3:
                continue  # dropped by the broker after its PUBACK
            at = out1 + rng.random() * 60 if inside else t + 0.05
            stored.append(Stored(at, dev, 1, seq, t, t + 0.04, 1.0, inside))
            events.append(IngestAcked(at + 0.01, dev, 1, seq))
    broker = [BrokerSample(T0 + s, 0, 10.0, float(max(0, s - (out0 - T0)) // 3), 0.0)
              for s in range(0, readings, 1)]
    faults = [FaultWindow("outage", "cut", "ingest", out0, out1)]
    stored.sort(key=lambda s: s.t)
    return History(device_events=events, stored=stored, faults=faults, broker=broker, delivery="broker-ack")


def baseline_pass(hist: History) -> int:
    """One plain pass: every event sorted by (key, time), the stored readings by key."""
    evs = sorted(hist.device_events, key=lambda e: (getattr(e, "key", ()), e.t))
    sto = sorted(hist.stored, key=lambda s: s.key)
    return len(evs) + len(sto)


def timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--readings", type=int, default=1200)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    hist = make_history(args.devices, args.readings)
    base = [timed(baseline_pass, hist) for _ in range(args.repeat)]
    chk = [timed(check, hist) for _ in range(args.repeat)]
    result = check(hist)
    doc = {"readings": args.devices * args.readings, "events": len(hist.device_events),
           "baseline_s": round(statistics.median(base), 3), "check_s": round(statistics.median(chk), 3),
           "ratio": round(statistics.median(chk) / statistics.median(base), 2),
           "lost": result.totals.lost, "stored": result.totals.stored}
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
