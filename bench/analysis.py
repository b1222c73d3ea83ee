"""The analysis stage's benchmarks, ratios in one run (docs/benchmarks.md, "Analysis stage").

    .venv/bin/python -m bench.analysis speed [--devices 20] [--seconds 300]
    .venv/bin/python -m bench.analysis drain [--messages 60000] [--devices 50] [--rounds 2]

speed: an ingest store holding `devices` × `seconds` of ecgsyn ECG (1-s readings, written by
the real ingest store), analysed in-process to the end; device-seconds of ECG per CPU-second
of the analysis (time.process_time): as a backlog (batches of 500), as live traffic (one
reading per device per batch, as a stack that keeps up sees it) and as live traffic looked at
every 5 s (five readings per device per batch).

drain: ingest's drain rate of a broker backlog (bench/drain.py's measurement) with and
without `python -m analysis` running on the same state dir, alternating, `rounds` times each;
the ratio with/without says what the analysis costs ingest on this machine.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from analysis.service import AnalysisService, ServiceConfig
from analysis.store_view import progress
from bench.drain import publish_backlog, start_ingest, stored_count
from ecgcore.clock import SystemClock
from ecgcore.files import read_json
from ingest.store import SqliteStore
from ingest.validate import Accepted, validate
from lab.stack.broker import BrokerSettings, RunningBroker
from lab.stack.ports import free_port
from wire import Reading, encode_reading
from wire.topics import ecg_topic

FS = 250
T0 = 1_700_000_000.0


def _ecg(seconds: int, hr: float, seed: int) -> np.ndarray:
    import neurokit2 as nk

    x = nk.ecg_simulate(duration=seconds, sampling_rate=FS, heart_rate=hr, random_state=seed, method="ecgsyn")
    return np.clip(np.round(np.asarray(x) * 1000 / 2.5), -32768, 32767).astype(np.int16)


def write_store(db: Path, signals: list[np.ndarray]) -> int:
    """Each signal as 1-s readings of one device, stored device-interleaved (as live traffic
    arrives)."""
    seconds = min(len(x) for x in signals) // FS
    store = SqliteStore(db)
    try:
        for s in range(seconds):
            batch: list[Accepted] = []
            for d, x in enumerate(signals):
                dev = f"bd-{d:04d}"
                r = Reading(dev, 1, s, T0 + s, FS, 2.5, x[s * FS : (s + 1) * FS])
                got = validate(ecg_topic(dev), encode_reading(r), T0 + s + 1)
                if not isinstance(got, Accepted):
                    raise SystemExit(f"ingest refused the bench's reading: {got}")
                batch.append(got)
            store.store_batch(batch, [], T0 + s + 1)
    finally:
        store.close()
    return len(signals) * seconds


def analyse_all(state: Path, max_batch: int) -> dict[str, float]:
    """Analyse the whole store in this process, batch by batch; CPU and wall time of it."""
    from analysis.detect import warm_up

    warm_up()
    with (state / "analysis.log").open("a") as log:
        service = AnalysisService(ServiceConfig(state, max_batch=max_batch), SystemClock(), log=log)
        try:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            n = 0
            while (k := service.step()) > 0:
                n += k
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        finally:
            service.store.close()
    return {"readings": n, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "device_s_per_cpu_s": round(n / cpu, 1)}


def speed(devices: int, seconds: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="ecgpipe-bench-analysis-"))
    out: dict[str, Any] = {"devices": devices, "seconds": seconds}
    signals = [_ecg(seconds, 50.0 + 5 * (d % 16), d) for d in range(devices)]
    for name, batch in (("backlog", 500), ("live", devices), ("live_5s", 5 * devices)):
        state = root / name
        write_store(state / "ingest" / "ingest.sqlite", signals)
        out[name] = analyse_all(state, batch)
        out[name]["events"] = progress(state / "analysis" / "analysis.sqlite")["events"]
    return out


def start_analysis(state: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    (state / "analysis").mkdir(parents=True, exist_ok=True)
    with (state / "analysis.log").open("ab") as log:
        # --poll 0.05: it looks at the store all through the drain, as at a high --speed
        argv = [sys.executable, "-m", "analysis", "--state-dir", str(state), "--poll", "0.05", *extra]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while (read_json(state / "analysis" / "ready.json") or {}).get("pid") != proc.pid:
        if time.monotonic() > end or proc.poll() is not None:
            raise SystemExit("the analysis did not become ready; see " + str(state / "analysis.log"))
        time.sleep(0.05)
    return proc


def drain_once(messages: int, devices: int, with_analysis: bool, extra: list[str]) -> dict[str, Any]:
    """bench/drain.py's ingest drain (persistent session, backlog, reconnect, timed)."""
    tmp = Path(tempfile.mkdtemp(prefix="ecgpipe-bench-drain-analysis-"))
    port = free_port()
    broker = RunningBroker(BrokerSettings(port=port, data_dir=tmp / "b" / "data", log_file=tmp / "b" / "log",
                                          max_queued=messages * 2), tmp / "b" / "mosquitto.conf").start()
    ana = None
    try:
        ing = start_ingest(tmp, port)  # creates ingest's persistent session
        ing.send_signal(signal.SIGTERM)
        ing.wait(30)
        publish_backlog("127.0.0.1", port, messages, devices)
        if with_analysis:
            ana = start_analysis(tmp, extra)
        db = tmp / "ingest" / "ingest.sqlite"
        base = stored_count(db)
        ing = start_ingest(tmp, port)
        t_first, c_first = None, 0
        end = time.monotonic() + 600
        while time.monotonic() < end:
            c = stored_count(db) - base
            now = time.perf_counter()
            if c > 0 and t_first is None:
                t_first, c_first = now, c
            if c >= messages:
                break
            time.sleep(0.02)
        t_end = time.perf_counter()
        analysed = progress(tmp / "analysis" / "analysis.sqlite")["analysed"] if ana else None
        ing.send_signal(signal.SIGTERM)
        ing.wait(30)
        rate = (messages - c_first) / (t_end - t_first) if t_first else 0.0
        return {"with_analysis": with_analysis, "ingest_msgs_per_s": round(rate),
                "drain_s": round(t_end - (t_first or t_end), 2), "analysed_meanwhile": analysed}
    finally:
        if ana is not None:
            ana.send_signal(signal.SIGTERM)
            ana.wait(60)
        broker.stop()


def drain(messages: int, devices: int, rounds: int, extra: list[str]) -> dict[str, Any]:
    runs = [drain_once(messages, devices, w, extra) for _ in range(rounds) for w in (False, True)]
    without = [r["ingest_msgs_per_s"] for r in runs if not r["with_analysis"]]
    with_ = [r["ingest_msgs_per_s"] for r in runs if r["with_analysis"]]
    return {"messages": messages, "devices": devices, "runs": runs,
            "without_median": float(np.median(without)), "with_median": float(np.median(with_)),
            "ratio": round(float(np.median(with_)) / float(np.median(without)), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--devices", type=int, default=20)
    s.add_argument("--seconds", type=int, default=300)
    d = sub.add_parser("drain")
    d.add_argument("--messages", type=int, default=60_000)  # paho: at most 65,535 in flight
    d.add_argument("--devices", type=int, default=50)
    d.add_argument("--rounds", type=int, default=2)
    d.add_argument("--analysis-args", default="",
                   help="more options for python -m analysis, e.g. '--nice 19'")
    a = p.parse_args()
    doc = (speed(a.devices, a.seconds) if a.what == "speed"
           else drain(a.messages, a.devices, a.rounds, a.analysis_args.split()))
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
