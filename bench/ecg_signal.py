"""ECG generation cost: device-seconds of signal per CPU-second, the per-device generator
(devices/ecg_source.py) against calling neurokit2's ecgsyn for every 1-s chunk, in one run.

    .venv/bin/python -m bench.ecg_signal [--devices 300] [--seconds 120] [--ecgsyn-calls 40]
                                         [--mix sinus:40%,af:15%,pvc:15%,bigeminy:10%,brady:10%,tachy:10%]
                                         [--min-ratio 100]

ecgsyn: `ecg_simulate(duration=1, sampling_rate=250, method="ecgsyn")` called `--ecgsyn-calls`
times, as a device that generated its own signal chunk by chunk would (after one warm-up call,
so neurokit2's import is not counted). Generator: `--devices` fresh streams drawn from the
catalogue mix, each read in 1-s chunks for `--seconds` simulated seconds at consecutive
absolute sample numbers, exactly as a fleet's devices do (first blocks included: nothing is
pre-generated). The template library is loaded (or built and cached) before timing: a fleet
does that once at start. CPU time is the process's (time.process_time). Exits 1 when the
ratio is below --min-ratio.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from devices.catalogue import fleet_profiles, load_catalogue, parse_mix
from devices.ecg_source import EcgStream, PatientSource, ecgsyn
from devices.fleet import ecg_cache_dir

FS = 250
T0 = 1_796_045_840.0


def ecgsyn_rate(calls: int) -> float:
    """Device-seconds per CPU-second of ecgsyn, one call per 1-s chunk."""
    ecgsyn(1.0, FS, 70.0, 1.0, random_state=0)  # the import and first-call costs, not timed
    start = time.process_time()
    for i in range(calls):
        ecgsyn(1.0, FS, 60.0 + i % 40, 1.0, random_state=i + 1)
    return calls / (time.process_time() - start)


def generator_rate(devices: int, seconds: int, mix: str) -> tuple[float, int]:
    """Device-seconds per CPU-second of the per-device generator, and the samples checked."""
    cat = load_catalogue()
    source = PatientSource(FS, 0, ecg_cache_dir())
    _ = source.library  # loaded once per fleet, at start
    profiles = fleet_profiles(devices, 1, mix=parse_mix(mix, cat), catalogue=cat)
    n0 = round(T0 * FS)
    start = time.process_time()
    streams = [EcgStream.for_profile(p, source) for p in profiles]
    total = 0
    for k in range(seconds):
        for s in streams:
            total += s.read(n0 + k * FS, FS).samples.size
    elapsed = time.process_time() - start
    return devices * seconds / elapsed, total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ecg_signal", description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=300)
    p.add_argument("--seconds", type=int, default=120)
    p.add_argument("--ecgsyn-calls", type=int, default=40)
    p.add_argument("--mix", default="sinus:40%,af:15%,pvc:15%,bigeminy:10%,brady:10%,tachy:10%")
    p.add_argument("--min-ratio", type=float, default=100.0)
    ns = p.parse_args(argv)
    slow = ecgsyn_rate(ns.ecgsyn_calls)
    fast, samples = generator_rate(ns.devices, ns.seconds, ns.mix)
    if samples != ns.devices * ns.seconds * FS:
        print(f"the generator returned {samples} samples, not {ns.devices * ns.seconds * FS}")
        return 1
    ratio = fast / slow
    print(f"ecgsyn per 1-s chunk : {slow:10.1f} device-s per CPU-s "
          f"({1000 / slow:.2f} ms per chunk, {ns.ecgsyn_calls} calls)")
    print(f"per-device generator : {fast:10.1f} device-s per CPU-s "
          f"({1e6 / fast:.1f} us per chunk, {ns.devices} devices x {ns.seconds} s, mix {ns.mix})")
    print(f"ratio                : {ratio:10.1f}x (required: {ns.min_ratio:g}x)")
    print(f"one core feeds about {fast:,.0f} devices at {FS} Hz in real time "
          f"(numpy {np.__version__})")
    return 0 if ratio >= ns.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
