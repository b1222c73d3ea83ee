"""A scenario variant as the settings of the stack that runs it (pure: no process, no clock).

Everything in a scenario is simulated time; the stack runs `speed` times faster than real
time. Most of its timers follow the shared simulated clock, but the network's do not: the
MQTT keepalive, the devices' reconnect backoff and ingest's reconnect wait are real seconds.
They are scaled here (sim_to_real) so that a run loses what a real-time run would, with a
floor below which a busy 2-core machine breaks healthy links.

    with_chunk, with_devices   --chunk-seconds and --devices: the variant, compressed
    stack_config               the variant as a StackConfig, its network timers scaled
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from devices.flow import RESUME_SPREAD
from ecgcore.modes import Delivery
from lab.checker.fidelity import no_story_drain
from lab.errors import ConfigError
from lab.scenario.episodes import episode_args
from lab.scenario.model import FleetSpec, Scenario, Variant
from lab.stack.statedir import StackConfig

SCENARIO_ORIGIN = 1_688_947_200.0  # 2023-07-10T00:00:00Z: the week of the CardioComm outage
MIN_KEEPALIVE_S = 2  # real seconds: below this a busy 2-core machine drops healthy links
BACKOFF_CAP_S = 30.0  # simulated: the devices' longest wait between reconnect attempts
LAG_REAL_S = 10.0  # fidelity: real seconds the stack may be behind outside faults (one ack timeout)
MIN_LAG_SIM_S = 15.0  # ... but never less than this many simulated seconds
INGEST_RECONNECT_S = 4.0  # simulated: ingest's longest wait to reach the broker again


def with_chunk(var: Variant, chunk_s: float | None) -> Variant:
    """The variant with longer (or shorter) continuous-mode chunks: fewer readings per
    simulated second, so a continuous scenario can be compressed harder. A backlog pace
    (readings per second) scales with it, so that it still sends the same seconds of ECG
    per second."""
    if chunk_s is None:
        return var
    if not chunk_s > 0:
        raise ConfigError(f"--chunk-seconds must be more than 0, got {chunk_s:g}")
    pace = var.fleet.backlog_pace
    if pace is not None:
        pace = pace * var.fleet.chunk / chunk_s
    return replace(var, fleet=replace(var.fleet, chunk=chunk_s, backlog_pace=pace))


def with_devices(var: Variant, devices: int | None) -> Variant:
    """The variant with a smaller (or larger) fleet: a compressed form for quick runs and CI.
    A fleet split into profiles keeps their proportions (each profile at least one device)."""
    if devices is None or devices == var.fleet.devices:
        return var
    if devices < 1:
        raise ConfigError(f"--devices must be at least 1, got {devices}")
    fleet = var.fleet
    profiles = fleet.profiles
    if profiles:
        sizes = [max(1, round(p.devices * devices / fleet.devices)) for p in profiles]
        sizes[-1] = max(1, devices - sum(sizes[:-1]))
        if sum(sizes) != devices:
            raise ConfigError(f"--devices {devices} is too few for {len(profiles)} patient profiles")
        profiles = tuple(replace(p, devices=n) for p, n in zip(profiles, sizes, strict=True))
    return replace(var, fleet=replace(fleet, devices=devices, profiles=profiles))


def sim_to_real(sim_s: float, speed: float, floor_s: float) -> float:
    """A network timer that decides what a run loses, kept in simulated time: sim_s / speed
    real seconds, but at least floor_s (shorter real timers break on a busy 2-core machine
    or become a reconnect storm)."""
    return max(floor_s, sim_s / speed)


def max_lag_s(scn: Scenario, speed: float) -> float:
    """How far (simulated seconds) the stack may fall behind outside faults before the run is not
    faithful (lab/checker/fidelity.py): the scenario's max_lag, else LAG_REAL_S real seconds at
    this speed, at least MIN_LAG_SIM_S. A fleet tick, an ingest batch and a proxy poll are
    fractions of a real second; a reading whose copies were dropped waits one probe round (an
    ack timeout) in a stack that keeps up; more than that, and it is not following."""
    if scn.max_lag is not None:
        return float(scn.max_lag)
    return max(MIN_LAG_SIM_S, LAG_REAL_S * speed)


def story_drain(var: Variant, speed: float) -> Callable[[float], float]:
    """The drain time a fault window of `length` simulated seconds implies by the design itself:
    with a backlog pace, each device's backlog (its readings of the window) goes out at the
    pace, less its live readings meanwhile; end-to-end devices resume at a random moment
    within their ack timeout after ingest's return (devices/flow.py), real seconds that
    compression stretches like the network's. Otherwise 0: what the devices hold they send at
    once, and how long that takes is the machine's."""
    f = var.fleet
    pace = f.backlog_pace
    per_device = f.readings_per_second / f.devices if f.devices else 0.0
    resume = RESUME_SPREAD * f.ack_timeout * speed if f.delivery == Delivery.END_TO_END else 0.0
    rate = pace - per_device if pace and pace > per_device else pace

    def drain_s(length: float) -> float:
        return resume + (per_device * length / rate if rate else 0.0)

    return drain_s if (resume or rate) else no_story_drain


def real_keepalive(keepalive: float | None, speed: float) -> int:
    """The devices' MQTT keepalive in real seconds. A scenario's keepalive is simulated time,
    like everything in it, so under --speed K the devices use keepalive / K (at least
    MIN_KEEPALIVE_S): a blackhole is then noticed after the same simulated time as in a
    real-time run. Without one the fleet keeps its 10 real seconds."""
    if keepalive is None:
        return 10
    return min(65535, round(sim_to_real(keepalive, speed, MIN_KEEPALIVE_S)))


def real_backoff_cap(speed: float) -> float:
    """The reconnect backoff's cap: 30 s of simulated time, at least MIN_KEEPALIVE_S real.
    Without it, a device at 20x would wait up to 10 simulated minutes to come back."""
    return sim_to_real(BACKOFF_CAP_S, speed, float(MIN_KEEPALIVE_S))


def real_ingest_reconnect(speed: float) -> float:
    """Ingest's longest wait to reach the broker again: 4 s of simulated time (at least 0.1
    real s). Its queue overflows for as long as it stays away, so at 20,000x a real 4 s would
    be 22 simulated hours of strips dropped that a real-time run keeps."""
    return sim_to_real(INGEST_RECONNECT_S, speed, 0.1)


def cohort_specs(fleet: FleetSpec) -> tuple[str, ...]:
    """The scenario's patient profiles as the fleet's --cohort specs."""
    specs = []
    for p in fleet.profiles:
        spec = f"{p.name}:{p.devices}"
        if p.hr_bpm is not None:
            spec += f":hr={p.hr_bpm[0]:g}-{p.hr_bpm[1]:g}"
        if p.strips_per_day is not None:
            spec += f":strips={p.strips_per_day}"
        if p.rhythm:
            spec += f":profile={p.rhythm}"  # exact: these devices are these patients
        specs.append(spec)
    return tuple(specs)


def stack_config(scn: Scenario, var: Variant, speed: float) -> StackConfig:
    """The stack that runs `var` at `speed`: its simulated clock starts at SCENARIO_ORIGIN
    (anchored in a file the stack's processes share) and the fleet records until the
    timeline's end."""
    f, b = var.fleet, var.broker
    return StackConfig(
        devices=f.devices, delivery=f.delivery, max_queued=b.max_queued, persistence=b.persistence,
        autosave_interval=b.autosave_interval,
        secure=b.secure, tls=b.secure, ingest_workers=b.ingest_workers, store=b.store, broker=b.kind,
        outbox_capacity=f.outbox_capacity, fleet_procs=f.procs,
        outbox_policy=f.outbox_policy, seed=scn.seed,
        sample_rate=f.sample_rate, chunk_seconds=f.chunk, ack_timeout=f.ack_timeout, speed=speed,
        recording=f.recording, strip_seconds=f.strip_length or 30.0, strips_per_day=f.strips_per_day or 3,
        strip_chunks=f.strip_chunks or 1, window=f.window, clock_origin=SCENARIO_ORIGIN,
        clock_anchor_file=True, record_until=SCENARIO_ORIGIN + scn.duration,
        keepalive=real_keepalive(f.keepalive, speed), reconnect_backoff=f.reconnect_backoff,
        backlog_pace=f.backlog_pace, cohorts=cohort_specs(f), backoff_cap=real_backoff_cap(speed),
        ingest_reconnect_max=real_ingest_reconnect(speed),
        ingest_keepalive=30 if b.ingest_keepalive is None else real_keepalive(b.ingest_keepalive, speed),
        episodes=episode_args(scn.episodes, f, SCENARIO_ORIGIN), analysis=is_clinical(scn, var),
    )


CLINICAL_MEASURES = ("episode", "false_alarms", "beats.")  # prefixes of the clinical verdicts' measures


def is_clinical(scn: Scenario, var: Variant) -> bool:
    """Whether the run needs the analysis stage: its story has patients with a named rhythm or
    scheduled episodes, or its verdicts name a clinical measure. Otherwise the stage would only
    load the machine (neurokit2 on every reading) for a section the report leaves out."""
    if scn.episodes or any(p.rhythm for p in var.fleet.profiles):
        return True
    names = [n for e in var.expect for n in (e.metric, e.other) if n]
    return any(n.startswith(CLINICAL_MEASURES) for n in names)
