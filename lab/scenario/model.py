"""The scenario model: frozen, validated values (Scenario, Variant, FleetSpec, Profile, Broker, Fault)
and ScenarioError. Pure: nothing here reads a file, starts a process or reads a clock."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ecgcore.modes import (
    BACKOFFS,
    DELIVERY_MODES,
    LINKS,
    OUTBOX_POLICIES,
    RECORDINGS,
    Backoff,
    Delivery,
    OutboxPolicy,
    Recording,
)
from lab.checker.expect import WINDOW_ID, Expectation
from lab.errors import LabError
from lab.scenario import targets
from lab.scenario.targets import PARTITION, WORKER_TARGET, engine_problem, fault_targets, target_problem

if TYPE_CHECKING:  # episodes.py and attacks.py build on this module
    from lab.scenario.attacks import Attack
    from lab.scenario.episodes import EpisodeSpec

NETWORK_KINDS = ("cut", "blackhole", "latency", "bandwidth", "flap")
PROCESS_KINDS = ("kill", "term", "stop")
FAULT_KINDS = (*NETWORK_KINDS, *PROCESS_KINDS, PARTITION)

Path_ = tuple[str | int, ...]


class ScenarioError(LabError):
    """A scenario file that cannot run, with the file and line it was found at."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None,
                 key: str | Path_ | None = None) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.key: Path_ = (key,) if isinstance(key, str) else tuple(key or ())
        where = self.file or ""
        if line is not None:
            where = f"{where}, line {line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


def _fail(key: str | Path_, message: str) -> ScenarioError:
    return ScenarioError(message, key=key)


# --- the model ------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        v = getattr(obj, name)
        if v is not None and not (_is_num(v) and v > 0):
            raise _fail(name, f"{name} must be more than 0, got {v!r}")


def _at_least_one(obj: Any, *names: str) -> None:
    for name in names:
        v = getattr(obj, name)
        if not (_is_int(v) and v >= 1):
            raise _fail(name, f"{name} must be a whole number of at least 1, got {v!r}")


def _choice(obj: Any, name: str, options: Sequence[str]) -> None:
    v = getattr(obj, name)
    if v not in options:
        hint = difflib.get_close_matches(str(v), list(options), n=1)
        mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise _fail(name, f"{name} must be one of {', '.join(map(repr, options))}, not {v!r}{mean}")


@dataclass(frozen=True)
class Profile:
    """A group of patients: how many devices, and (optionally) their rhythm (a catalogue entry
    of devices.catalogue: sinus, brady, tachy, af, pvc, bigeminy, ...), their heart-rate range
    and, in strip mode, how often they record."""

    name: str
    devices: int
    hr_bpm: tuple[float, float] | None = None
    strips_per_day: int | None = None
    rhythm: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and WINDOW_ID.fullmatch(self.name)):
            raise _fail("name", f"profile name must be letters, digits, '-' or '_', got {self.name!r}")
        _at_least_one(self, "devices")
        if self.hr_bpm is not None:
            lo, hi = self.hr_bpm
            if not (30 <= lo <= hi <= 220):
                raise _fail("hr_bpm", f"hr_bpm must be [low, high] within 30..220 bpm, "
                                      f"got {list(self.hr_bpm)}")
        if self.strips_per_day is not None:
            _at_least_one(self, "strips_per_day")
        if self.rhythm is not None and not WINDOW_ID.fullmatch(self.rhythm):
            raise _fail("rhythm", f"rhythm must name a catalogue entry (letters, digits, '-' or '_'), "
                                  f"got {self.rhythm!r}")


@dataclass(frozen=True)
class FleetSpec:
    """The simulated devices. Durations are simulated seconds; backlog_pace is readings per
    second per device when sending a backlog (None: as fast as the window allows)."""

    devices: int
    delivery: str = Delivery.END_TO_END.value
    recording: str = Recording.CONTINUOUS.value
    strip_length: float | None = None  # strip only; default 30 s (the fleet's --strip-seconds)
    strips_per_day: int | None = None  # strip only; default 3
    strip_chunks: int | None = None  # strip only: readings per strip; default 1 (the whole strip)
    chunk: float = 1.0
    sample_rate: int = 250
    outbox_capacity: int = 5000
    outbox_policy: str = OutboxPolicy.DROP_OLDEST.value
    ack_timeout: float = 10.0
    window: int = 50
    keepalive: float | None = None  # simulated s; None: the fleet's 10 real seconds, unscaled
    reconnect_backoff: str = Backoff.JITTER.value
    backlog_pace: float | None = None
    profiles: tuple[Profile, ...] = ()
    procs: int = 1  # processes the fleet runs in (`up --fleet-procs`), MAX_DEVICES devices each

    STRIP_DEFAULTS: ClassVar[tuple[tuple[str, float], ...]] = (
        ("strip_length", 30.0), ("strips_per_day", 3), ("strip_chunks", 1))

    def __post_init__(self) -> None:
        _at_least_one(self, "devices", "sample_rate", "outbox_capacity", "window", "procs")
        if wrong := targets.fleet_problem(self.devices, self.procs):
            raise _fail(*wrong)
        _choice(self, "delivery", DELIVERY_MODES)
        _choice(self, "recording", RECORDINGS)
        _choice(self, "outbox_policy", OUTBOX_POLICIES)
        _choice(self, "reconnect_backoff", BACKOFFS)
        _positive(self, "chunk", "ack_timeout", "keepalive", "backlog_pace", "strip_length")
        if self.keepalive is not None and not (float(self.keepalive).is_integer()
                                               and 1 <= self.keepalive <= 65535):
            raise _fail("keepalive", f"keepalive must be whole seconds from 1s to 65535s, "
                                     f"got {self.keepalive!r}")
        if self.recording == Recording.STRIP:
            self._check_strips()
        else:
            for name, _ in self.STRIP_DEFAULTS:
                if getattr(self, name) is not None:
                    raise _fail(name, f'{name} only applies to recording = "strip"')
        object.__setattr__(self, "profiles", tuple(self.profiles))
        if self.profiles:
            self._check_profiles()

    def _check_strips(self) -> None:
        """Strip mode: fill in the defaults, and the strips must fit in a day."""
        for name, default in self.STRIP_DEFAULTS:
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        _at_least_one(self, "strips_per_day", "strip_chunks")
        per_day, length, _ = self.strips
        if per_day * length > 86400:
            raise _fail("strip_length", f"{per_day} strips a day leave {86400 / per_day:g}-s slots, "
                                        f"too short for a {length:g}-s strip")

    def _check_profiles(self) -> None:
        names = [p.name for p in self.profiles]
        for i, p in enumerate(self.profiles):
            if names.index(p.name) != i:
                raise _fail(("profiles", i, "name"), f"profile {p.name!r} is named twice")
            if p.strips_per_day is not None and self.recording != Recording.STRIP:
                raise _fail(("profiles", i, "strips_per_day"),
                            'strips_per_day only applies to recording = "strip"')
            if p.strips_per_day is not None and p.strips_per_day * self.strips[1] > 86400:
                raise _fail(("profiles", i, "strips_per_day"),
                            f"{p.strips_per_day} strips a day of {self.strip_length:g} s do not fit in a day")
        total = sum(p.devices for p in self.profiles)
        if total != self.devices:
            raise _fail(("profiles",), f"the profiles have {total} devices in all, "
                                       f"but the fleet has {self.devices}")

    @property
    def strips(self) -> tuple[int, float, int]:
        """Strip mode's (strips_per_day, strip_length, strip_chunks): set in strip mode, the
        defaults (3, 30 s, 1) otherwise."""
        return (self.strips_per_day or 3, self.strip_length or 30.0, self.strip_chunks or 1)

    @property
    def readings_per_second(self) -> float:
        """The fleet's average generation rate (readings per simulated second)."""
        if self.recording == Recording.STRIP:
            per_day, _, chunks = self.strips
            if self.profiles:
                per_day = sum((p.strips_per_day or per_day) * p.devices for p in self.profiles)
            else:
                per_day *= self.devices
            return per_day * chunks / 86400
        return self.devices / self.chunk


@dataclass(frozen=True)
class Broker:
    max_queued: int = 1000
    persistence: bool = True
    autosave_interval: int = 2  # Mosquitto's own setting: real seconds between snapshots, unscaled
    # provisioned logins, the ACL, mutual TLS, signed readings and acks; false: the anonymous,
    # plaintext, unsigned lab (`ecgpipe up --insecure`), for the comparison
    secure: bool = True
    # ingest's MQTT keepalive, simulated s: the broker publishes ingest's Last Will (offline)
    # after 1.5 times this without a packet. None: ingest's 30 real seconds, unscaled
    ingest_keepalive: float | None = None
    ingest_workers: int = 1  # ingest processes sharing the readings; faults on ingest-K: one worker
    store: str = "sqlite"  # or "postgres" (a PostgreSQL the stack runs; faults may target it)
    kind: str = "mosquitto"  # or "nats-cluster" (three NATS nodes)

    def __post_init__(self) -> None:
        _at_least_one(self, "max_queued", "autosave_interval")
        if self.ingest_keepalive is not None and not (
                isinstance(self.ingest_keepalive, int | float) and self.ingest_keepalive >= 1
                and float(self.ingest_keepalive).is_integer()):
            raise _fail("ingest_keepalive",
                        f"ingest_keepalive must be whole seconds, at least 1, got {self.ingest_keepalive!r}")
        for name in ("secure", "persistence"):
            if not isinstance(value := getattr(self, name), bool):
                raise _fail(name, f"{name} must be true or false, got {value!r}")
        wrong = engine_problem(self.kind, self.store, self.ingest_workers)
        if wrong:
            raise _fail(*wrong)


@dataclass(frozen=True)
class Fault:
    """One fault window, in simulated seconds since the run began.

    Network kinds (target = link "ingest" or "devices", through the lab's TCP proxy): cut,
    blackhole, latency (latency ± jitter), bandwidth (bytes/s each way), flap (down/up).
    Process kinds (target ingest, broker or devices): kill (-9 at start, started again at end),
    term (SIGTERM, started again at end), stop (SIGSTOP, SIGCONT at end). partition (target nats-K
    or nats-leader): that node's routes cut from start to end (lab.nemesis.partition)."""

    id: str
    kind: str
    target: str
    start: float
    end: float
    latency: float | None = None
    jitter: float | None = None
    bandwidth: float | None = None  # bytes per second
    up: float | None = None
    down: float | None = None
    entry: int = field(default=-1, compare=False)  # index of its [[faults]] entry, for messages

    PARAMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "latency": ("latency", "jitter"), "bandwidth": ("bandwidth",), "flap": ("up", "down")}

    def __post_init__(self) -> None:
        if not (isinstance(self.id, str) and WINDOW_ID.fullmatch(self.id)):
            raise _fail("id", f"a fault id is letters, digits, '-' or '_', got {self.id!r}")
        _choice(self, "kind", FAULT_KINDS)
        what, targets = fault_targets(self.kind, LINKS if self.kind in NETWORK_KINDS else None)
        worker = what == "process" and WORKER_TARGET.fullmatch(str(self.target))
        if self.target not in targets and not worker:
            raise _fail("target", f"{self.kind} needs a {what} target: one of "
                                  f"{', '.join(map(repr, targets))}, not {self.target!r}")
        if not (_is_num(self.start) and self.start >= 0):
            raise _fail("start", f"start must be at or after the beginning of the run (0), "
                                 f"got {self.start!r}")
        if not (_is_num(self.end) and self.end > self.start):
            raise _fail("end", f"end ({self.end!r} s) must be after start ({self.start!r} s)")
        allowed = self.PARAMS.get(self.kind, ())
        for name in ("latency", "jitter", "bandwidth", "up", "down"):
            v = getattr(self, name)
            if v is not None and name not in allowed:
                raise _fail(name, f"{name} does not apply to kind = {self.kind!r}")
        for name in allowed:
            if name != "jitter" and getattr(self, name) is None:
                raise _fail(("kind",), f"kind = {self.kind!r} needs {name}")
        _positive(self, "latency", "bandwidth", "up", "down")
        if self.jitter is not None and not (_is_num(self.jitter) and self.jitter >= 0):
            raise _fail("jitter", f"jitter must be 0 or more, got {self.jitter!r}")
        if self.bandwidth is not None and self.bandwidth < 1:
            raise _fail("bandwidth", "bandwidth must be at least 1 byte per second")

    @property
    def layer(self) -> str:
        return "process" if self.kind in PROCESS_KINDS else "network"  # a partition: the routes

    def overlaps(self, other: Fault) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Variant:
    """One run of the scenario's timeline: its fleet, its broker and its expected verdict."""

    name: str
    fleet: FleetSpec
    broker: Broker
    expect: tuple[Expectation, ...]

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and WINDOW_ID.fullmatch(self.name)):
            raise _fail("name", f"a variant name is letters, digits, '-' or '_', got {self.name!r}")
        object.__setattr__(self, "expect", tuple(self.expect))
        if not self.expect:
            raise _fail("expect", f"variant {self.name!r} has no expected verdict (expect = [...])")


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    seed: int
    faults: tuple[Fault, ...]
    variants: tuple[Variant, ...]
    path: Path | None = field(default=None, compare=False)
    # fidelity: how far (simulated s) the stack may fall behind outside faults (None: the
    # runner's default, a few real seconds at the run's speed; lab/checker/fidelity.py)
    max_lag: float | None = None
    episodes: tuple[EpisodeSpec, ...] = ()  # [[episodes]]: rhythms scheduled on the timeline
    attacks: tuple[Attack, ...] = ()  # [[attacks]]: an attacker's windows (lab/scenario/attacks.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "episodes", tuple(self.episodes))
        if not (isinstance(self.description, str) and self.description.strip()
                and "\n" not in self.description):
            raise _fail("description", "description must be one non-empty line")
        if not (_is_num(self.duration) and self.duration > 0):
            raise _fail("duration", f"duration must be more than 0, got {self.duration!r}")
        if not (_is_int(self.seed) and self.seed >= 0):
            raise _fail("seed", f"seed must be a whole number ≥ 0, got {self.seed!r}")
        if self.max_lag is not None and not (_is_num(self.max_lag) and self.max_lag > 0):
            raise _fail("max_lag", f"max_lag must be more than 0, got {self.max_lag!r}")
        object.__setattr__(self, "faults", tuple(sorted(self.faults, key=lambda f: (f.start, f.id))))
        object.__setattr__(self, "variants", tuple(self.variants))
        fault_ids = self._check_faults()
        if not self.variants:
            raise _fail("variants", "a scenario needs at least one variant")
        names = [v.name for v in self.variants]
        for i, v in enumerate(self.variants):
            if names.index(v.name) != i:
                raise _fail(("variants", i, "name"), f"variant {v.name!r} is named twice")
            self._check_workers(i, v)
            for e in v.expect:
                if e.window_id is not None and e.window_id not in fault_ids:
                    raise _fail("expect", f"expectation {e.text!r} names fault {e.window_id!r}, "
                                          f"which is not in the timeline")

    def _check_workers(self, i: int, v: Variant) -> None:
        """Faults on ingest-K need K workers in every variant; on postgres, its store."""
        for f in self.faults:
            wrong = target_problem(f.target, v.broker.ingest_workers, v.broker.store, v.broker.kind)
            if wrong:
                raise _fail(("variants", i, "broker", wrong[0]),
                            f"fault {f.id!r} targets {f.target}, but variant {v.name!r} {wrong[1]}")

    def _check_faults(self) -> set[str]:
        """Each fault within the run, its own id, and no two overlapping on one target; the ids."""
        seen: dict[str, Fault] = {}
        for f in self.faults:
            where: Path_ = ("faults", f.entry) if f.entry >= 0 else ("faults",)
            if f.start > self.duration:
                raise _fail((*where, "start"), f"fault {f.id!r} starts at {f.start:g} s, after the "
                                               f"run ends ({self.duration:g} s)")
            if f.end > self.duration:
                raise _fail((*where, "end"), f"fault {f.id!r} ends at {f.end:g} s, after the run "
                                             f"ends ({self.duration:g} s)")
            if f.id in seen:
                raise _fail((*where, "id"), f"fault id {f.id!r} is used twice (give each "
                                            f"[[faults]] its own id)")
            for g in seen.values():
                if g.target == f.target and g.layer == f.layer and g.overlaps(f):
                    raise _fail((*where, "start"), f"fault {f.id!r} ({f.kind} {f.target}) overlaps "
                                                   f"{g.id!r} ({g.kind} {g.target}) on the same target")
            seen[f.id] = f
        return set(seen)

    def variant(self, name: str | None = None) -> Variant:
        if name is None:
            return self.variants[0]
        for v in self.variants:
            if v.name == name:
                return v
        raise ScenarioError(f"scenario {self.name!r} has no variant {name!r}; it has "
                            f"{', '.join(v.name for v in self.variants)}")
