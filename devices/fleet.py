"""The fleet: N devices, one outbox, one MQTT hub, one thread, one event loop.

Each loop iteration:

    1. wait in the selector (epoll) until a socket is ready or the next deadline
       (next tick, next connection attempt, next keepalive pass, next devices.json), all
       kept in real seconds, and never more than a second (so a stop request is seen
       within a second);
    2. read/write the ready sockets (paho's callbacks only queue events);
    3. start due connection attempts, run paho's keepalive about once a wall second;
    4. route queued events to their devices (connects, PUBACKs, end-to-end acks);
    5. on a tick: generate every complete chunk (strip), flush the history, commit the
       outbox ONCE for all devices, then let every device publish and flush the history
       again. Publishing comes after the commit, so nothing is ever published under a
       seq that a kill -9 could hand out again; the history reaches the OS before the
       commit (a `generated` line exists for every durable seq) and before paho writes
       the published bytes (at the next poll);
    6. about once a (wall) second, write fleet/devices.json (atomically) and log what changed.

When the ticks come. Continuous recording: every `tick_seconds` of real time. Strip
recording: the loop sleeps until the next tick is needed, i.e. the earliest of every
device's `wake_at()` (its next strip's end, its next re-send or probe; at once if it has
unsent rows and window room), converted to real seconds with `clock.to_wall()`, and a
routed event (connect, PUBACK, ack) brings the next tick forward to at most
`tick_seconds` after the last one. So an idle strip fleet only wakes for the network's
own timers.

Simulated time and real time. The injected clock runs `speed` simulated seconds per
real second (`--speed`, ecgcore.clock.ScaledClock). Two clocks, so that neither has to
be derived from the other:

    simulated: the injected `Clock`         real: `real_clock` (default time.monotonic)
    ------------------------------------   ---------------------------------------------
    chunk boundaries, captured_at          the tick period (tick_seconds)
    the strip schedule (times of day)      loop_misc once a real second (paho keepalive
    every timestamp: history `t`, outbox     PINGREQs), paho's own keepalive/connect timers
      enqueued_at/evicted_at, devices.json  the reconnect backoff (devices/mqtt_adapter.py)
      updated_at/since, status messages     devices.json and log cadence, eviction log
    the end-to-end probe and resume waits,  the selector's timeout
      ack_timeout * speed simulated s

Network timers are real because the broker and the network are: compressing a 30-s
backoff to 8 ms at --speed 3600 would be a reconnect storm. They do not read the
simulated clock at all, so they also keep running while a lab's shared clock stands still
before its anchor (ecgcore.clock.ScaledClock): the devices connect, ping and report
online while nothing is recorded yet. The ack timeout is real too (a probe sooner than a real
round trip would re-send what is on its way), but it is a device timer, kept in
simulated seconds as ack_timeout * speed; nothing is sent while the clock stands still.

A slice (`--slice K/N`, one child of `python -m devices --procs N`, devices/supervisor.py):
the fleet drives only devices [lo, hi) of the whole fleet (`FleetConfig.slice_bounds()`,
contiguous, sizes differing by at most one), each with exactly the id, profile, seed, start
offset and random streams the one-process fleet gives it; only the hub's reconnect jitter is
drawn from a stream of the slice's own. It reads the `since` of fleet/profiles.json (the
supervisor wrote the file for all devices) and does not write it, writes
fleet/devices-K.json instead of devices.json, prefixes its log lines with `[K/N]`, and
commits the outbox at the end of every loop step that wrote to it (the one-process fleet
leaves that transaction open until the next tick): several processes share the file, and a
write lock held while the loop sleeps in the selector would stall the others' commits. Once a
second it looks at its supervisor: frozen by SIGSTOP (the lab's `kill devices --signal STOP`),
the slice stops itself too, and the supervisor continues it when it runs again.

SIGTERM/SIGINT (installed by `__main__`, or `request_stop()`): stop generating, commit,
publish a retained "offline" status on every live link, disconnect, and return 0.
`record_until` (--record-until, a simulated Unix time): no chunk or strip that ends after it
is recorded; the fleet keeps running and delivering its outbox (a lab run's drain phase).
"""

from __future__ import annotations

import contextlib
import enum
import math
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

import numpy as np

from devices.catalogue import fleet_profiles, load_catalogue, parse_episode, parse_mix
from devices.device import Device, DeviceConfig
from devices.ecg_source import EcgStream, make_source
from devices.errors import ConfigError, ProfileError
from devices.history import HistoryFile, NoHistory
from devices.keys import FleetKeys
from devices.metrics import FleetMetrics, FleetSample
from devices.mqtt_adapter import FixedRetry, JitterBackoff, LinkEvent, MqttHub
from devices.outbox import Outbox
from devices.profile import Cohort, PatientProfile
from devices.profiles_file import profile_entry, read_profiles, write_profiles
from ecgcore.clock import Clock, make_clock
from ecgcore.files import write_json_atomic
from ecgcore.logline import stamp
from ecgcore.modes import (
    BACKOFFS,
    DELIVERY_MODES,
    OUTBOX_POLICIES,
    RECORDINGS,
    Backoff,
    Delivery,
    OutboxPolicy,
    Recording,
)
from wire import WireError, decode_ack, decode_service_status
from wire.reading import DEVICE_ID_RE
from wire.topics import is_ingest_status

SOURCES = ("ecgsyn", "synthetic")
W = TypeVar("W", bound=enum.StrEnum)
MAX_POLL_WALL = 1.0  # real seconds the loop may block in the selector at most


@dataclass(frozen=True)
class FleetConfig:
    """Everything `python -m devices` accepts (docs/architecture.md), validated."""

    state_dir: Path
    host: str
    port: int
    devices: int
    delivery: Delivery
    outbox_capacity: int = 5000
    outbox_policy: OutboxPolicy = OutboxPolicy.DROP_OLDEST
    chunk_seconds: float = 1.0
    sample_rate: int = 250
    seed: int = 0
    speed: float = 1.0
    id_prefix: str = "hc"
    ack_timeout: float = 10.0
    resend_cap: float = 300.0  # end-to-end: the re-send probe's longest wait, real seconds
    window: int = 50
    ecg_source: str = "ecgsyn"
    keepalive: int = 10
    tick_seconds: float = 0.1  # real seconds between generate/commit/publish passes
    history: bool = True  # append device events to DIR/history/devices.jsonl
    recording: Recording = Recording.CONTINUOUS
    strip_seconds: float = 30.0
    strips_per_day: int = 3
    strip_chunks: int = 1
    reconnect_backoff: Backoff = Backoff.JITTER  # exponential with jitter; none: every second, in step
    backoff_cap: float = 30.0  # jitter: the longest wait between attempts, real seconds
    mqtt311: bool = False  # MQTT 3.1.1 instead of 5 (the NATS cluster's MQTT listener)
    record_until: float | None = None  # simulated Unix time: record nothing that ends later
    backlog_pace: float | None = None  # backlog readings per simulated second per device
    cohorts: tuple[Cohort, ...] = ()
    profiles: str | None = None  # a catalogue mix, "sinus:70%,af:30%" (devices/catalogue.py)
    profile_file: Path | None = None  # a user's catalogue TOML: adds or replaces entries
    episodes: tuple[str, ...] = ()  # scheduled episodes, KIND@START+DURATION[:devices=I-J]
    # a secure stack's provisioned secrets (ecgcore.credentials): each device logs in as itself,
    # signs its readings, and believes only signed acks and ingest statuses; None: anonymous
    secrets_dir: Path | None = None
    tls: bool = True  # with secrets_dir: reach the broker over TLS with each device's certificate
    # (K, N): this process drives slice K of N of the devices (devices/supervisor.py); None: all
    slice: tuple[int, int] | None = None
    device: DeviceConfig = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "delivery", self._word(
            Delivery, self.delivery, f"delivery {self.delivery!r} is not one of {list(DELIVERY_MODES)}"))
        object.__setattr__(self, "state_dir", Path(self.state_dir))
        self._check_fleet()
        object.__setattr__(self, "outbox_policy", self._word(
            OutboxPolicy, self.outbox_policy,
            f"outbox policy {self.outbox_policy!r} is not one of {OUTBOX_POLICIES}"))
        self._check_run()
        object.__setattr__(self, "recording", self._word(
            Recording, self.recording, f"recording {self.recording!r} is not one of {RECORDINGS}"))
        if not (math.isfinite(self.backoff_cap) and self.backoff_cap >= 0.5):
            raise ConfigError(f"backoff cap must be at least 0.5 s, got {self.backoff_cap}")
        object.__setattr__(self, "reconnect_backoff", self._word(
            Backoff, self.reconnect_backoff,
            f"reconnect backoff {self.reconnect_backoff!r} is not one of {BACKOFFS}"))
        object.__setattr__(self, "cohorts", tuple(self.cohorts))
        object.__setattr__(self, "episodes", tuple(self.episodes))
        if self.cohorts or self.profiles or self.profile_file or self.episodes:
            try:
                self.patient_profiles()
            except ProfileError as exc:
                raise ConfigError(str(exc)) from None
        object.__setattr__(self, "device", DeviceConfig(
            delivery=self.delivery, chunk_seconds=self.chunk_seconds,
            sample_rate=self.sample_rate, ack_timeout=self.ack_timeout, window=self.window,
            resend_cap=self.resend_cap,
            recording=self.recording, strip_seconds=self.strip_seconds,
            strips_per_day=self.strips_per_day, strip_chunks=self.strip_chunks,
            backlog_pace=self.backlog_pace, record_until=self.record_until,
        ))

    @staticmethod
    def _word(kind: type[W], value: str, error: str) -> W:
        """`kind(value)`, or ConfigError(error) when value is not one of kind's words."""
        try:
            return kind(value)
        except ValueError:
            raise ConfigError(error) from None

    def _check_fleet(self) -> None:
        """The broker's port, the fleet's size and its outbox's capacity."""
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not in 1..65535")
        if self.devices < 1:
            raise ConfigError(f"a fleet needs at least 1 device, got {self.devices}")
        if self.outbox_capacity < 1:
            raise ConfigError(f"outbox capacity must be at least 1, got {self.outbox_capacity}")

    def _check_run(self) -> None:
        """Speed, seed, ECG source, device ids, keepalive and tick."""
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise ConfigError(f"speed must be positive, got {self.speed}")
        if self.seed < 0:
            raise ConfigError(f"seed must be non-negative, got {self.seed}")
        if self.ecg_source not in SOURCES:
            raise ConfigError(f"ECG source {self.ecg_source!r} is not one of {SOURCES}")
        if not DEVICE_ID_RE.match(f"{self.id_prefix}-{self.devices - 1:04d}"):
            raise ConfigError(f"id prefix {self.id_prefix!r} must be letters, digits, _ or -"
                              " and leave device ids of at most 64 characters")
        if not 1 <= self.keepalive <= 65535:
            raise ConfigError(f"keepalive {self.keepalive} s is out of range")
        if not self.tick_seconds > 0:
            raise ConfigError(f"tick must be positive, got {self.tick_seconds}")
        if self.slice is not None:
            k, n = self.slice
            if not 1 <= k <= n <= self.devices:
                raise ConfigError(f"slice {k}/{n} is not one of 1/N..N/N with N at most the "
                                  f"{self.devices} devices")

    @property
    def strip_mode(self) -> bool:
        return self.recording is Recording.STRIP

    @property
    def fleet_dir(self) -> Path:
        return self.state_dir / "fleet"

    @property
    def outbox_path(self) -> Path:
        return self.fleet_dir / "outbox.sqlite"

    @property
    def devices_json(self) -> Path:
        """fleet/devices.json, or a slice's fleet/devices-K.json (the supervisor merges them)."""
        if self.slice is not None:
            return self.fleet_dir / f"devices-{self.slice[0]}.json"
        return self.fleet_dir / "devices.json"

    def slice_bounds(self) -> tuple[int, int]:
        """The device indices [lo, hi) this process drives: all, or slice K of N (contiguous;
        the first devices % N slices have one device more)."""
        return slice_bounds(self.devices, self.slice)

    @property
    def cache_dir(self) -> Path:
        """Where the ecgsyn beat-template library is kept (devices/templates.py):
        $ECGPIPE_ECG_CACHE, else the user's cache ($XDG_CACHE_HOME or ~/.cache)/ecgpipe/ecg.
        Shared by every fleet and state dir: its file name holds its version and is written
        atomically, so fleets never need their own copy."""
        return ecg_cache_dir()

    @property
    def history_path(self) -> Path:
        return self.state_dir / "history" / "devices.jsonl"

    def device_ids(self) -> list[str]:
        """Every device's id, the whole fleet's (a slice's are `device_ids()[lo:hi]`)."""
        return [f"{self.id_prefix}-{i:04d}" for i in range(self.devices)]

    def patient_profiles(self) -> list[PatientProfile]:
        """Every device's patient (devices/catalogue.py); ProfileError on a bad mix, file
        or episode."""
        catalogue = load_catalogue(self.profile_file)
        mix = parse_mix(self.profiles, catalogue) if self.profiles else None
        episodes = [parse_episode(spec, catalogue) for spec in self.episodes]
        return fleet_profiles(self.devices, self.seed, mix=mix, cohorts=self.cohorts,
                              episodes=episodes, catalogue=catalogue)


def slice_bounds(devices: int, part: tuple[int, int] | None) -> tuple[int, int]:
    """Indices [lo, hi) of slice K of N of `devices` devices (all of them for None)."""
    if part is None:
        return 0, devices
    k, n = part
    size, extra = divmod(devices, n)
    lo = (k - 1) * size + min(k - 1, extra)
    return lo, lo + size + (1 if k <= extra else 0)


def parent_stopped() -> bool:
    """Whether this process's parent is frozen (SIGSTOP): a slice follows its supervisor."""
    try:
        stat = Path(f"/proc/{os.getppid()}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] in "Tt"


def ecg_cache_dir() -> Path:
    env = os.environ.get("ECGPIPE_ECG_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ecgpipe" / "ecg"


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):  # not allowed here: keep the soft limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Fleet:
    """Owns the clock, the outbox, the devices and the MQTT hub. See the module docstring."""

    def __init__(self, config: FleetConfig, clock: Clock | None = None,
                 out: TextIO | None = None,
                 real_clock: Callable[[], float] = time.monotonic,
                 metrics: FleetMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics  # Prometheus (devices/metrics.py): sampled with devices.json
        self.clock = clock if clock is not None else make_clock(config.speed)
        self._real = real_clock  # network timers and the loop's cadence: real seconds
        self._out = out if out is not None else sys.stdout
        self._stop_requested = False
        self.devices: list[Device] = []
        self.bad_acks = 0
        lo, hi = config.slice_bounds()
        self.keys = FleetKeys.load(config.secrets_dir, config.device_ids()[lo:hi], tls=config.tls)
        self._prefix = "" if config.slice is None else f"[{config.slice[0]}/{config.slice[1]}] "
        self.steps = 0  # loop iterations, and ticks among them (for logs and tests)
        self.ticks = 0
        self.running = False  # True from the end of start() to the start of shutdown()

    # --- lifecycle ----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the loop to stop (safe from a signal handler or another thread)."""
        self._stop_requested = True

    def run(self) -> int:
        """Start, loop until asked to stop, shut down gracefully. Returns the exit code."""
        self.start()
        try:
            while not self._stop_requested:
                self.step()
        finally:
            self.shutdown()
        return 0

    def start(self) -> None:
        cfg = self.config
        limit = raise_nofile_limit()
        cfg.fleet_dir.mkdir(parents=True, exist_ok=True)
        if cfg.strip_mode:
            recording = (f"strips of {cfg.strip_seconds:g} s at {cfg.sample_rate} Hz, "
                         f"{cfg.strips_per_day}/day, {cfg.strip_chunks} chunk(s) each")
        else:
            recording = f"{cfg.sample_rate} Hz x {cfg.chunk_seconds:g} s chunks"
        lo, hi = cfg.slice_bounds()
        part = "" if cfg.slice is None else f" (devices {lo}..{hi - 1} of {cfg.devices})"
        self.log(f"fleet starting: {hi - lo} devices{part}, delivery {cfg.delivery}, broker "
                 f"{cfg.host}:{cfg.port}, {recording}, "
                 f"ecg {cfg.ecg_source}, speed {cfg.speed:g}, pid {os.getpid()}")
        if limit < hi - lo + 64:
            self.log(f"warning: the open-file limit {limit} is too low for {hi - lo} devices")
        self.history: HistoryFile | NoHistory = (
            HistoryFile(cfg.history_path) if cfg.history else NoHistory())
        self.outbox = Outbox(cfg.outbox_path, capacity=cfg.outbox_capacity,
                             policy=cfg.outbox_policy)
        source = make_source(cfg.ecg_source, cfg.sample_rate, cfg.seed, cfg.cache_dir)
        profiles = cfg.patient_profiles()
        since = fleet_since(cfg, self.clock, profiles)
        if cfg.slice is None:  # a slice's supervisor wrote it for the whole fleet
            write_fleet_profiles(cfg, self.clock, profiles, since)
        lo, hi = cfg.slice_bounds()
        streams = [EcgStream.for_profile(p, source, since=t)
                   for p, t in zip(profiles[lo:hi], since[lo:hi], strict=True)]
        jitter = [cfg.seed, 0x6B0F] if cfg.slice is None else [cfg.seed, 0x6B0F, *cfg.slice]
        self.hub = MqttHub(
            cfg.host, cfg.port, self.clock, np.random.default_rng(jitter),
            keepalive=cfg.keepalive,
            backoff=(FixedRetry() if cfg.reconnect_backoff is Backoff.NONE
                     else JitterBackoff(cap=cfg.backoff_cap)),
            subscribe_acks=cfg.delivery is Delivery.END_TO_END,
            real_clock=self._real, credentials=self.keys.credentials, mqtt311=cfg.mqtt311,
        )
        for i, (device_id, profile, stream) in enumerate(
            zip(cfg.device_ids()[lo:hi], profiles[lo:hi], streams, strict=True), start=lo
        ):
            link = self.hub.add(device_id, boot_epoch=0)
            device = Device(device_id, profile, stream, self.outbox, link, self.clock, cfg.device,
                            start_offset=cfg.chunk_seconds * i / cfg.devices,
                            history=self.history, sign_key=self.keys.reading_key(device_id))
            link.boot_epoch = device.boot_epoch
            self.devices.append(device)
        self.history.flush()  # the boot events, before the commit that makes the boots count
        self.outbox.commit()
        self.running = True
        now = self._real()
        self._next_tick = now
        self._last_tick = now
        self._next_report = now
        self._logged_online = 0
        self._logged_evicted = self._evicted()
        self._next_evict_log = now
        self._logged_skipped = 0
        boots = sorted({d.boot_epoch for d in self.devices})
        self.log(f"outbox {cfg.outbox_path}: {self._buffered()} rows buffered, boot epochs "
                 f"{boots[0]}..{boots[-1]}, capacity {cfg.outbox_capacity} ({cfg.outbox_policy})")
        if cfg.history:
            self.log(f"history {cfg.history_path}")
        self._write_devices_json()

    def step(self) -> None:
        """One loop iteration (see the module docstring). Its deadlines are real seconds."""
        hub = self.hub
        self.steps += 1
        wait = min(self._next_tick, hub.next_deadline(), self._next_report) - self._real()
        hub.poll(min(max(0.0, wait), MAX_POLL_WALL))
        hub.service()
        self._route(hub.drain())
        now = self._real()
        if now >= self._next_tick:
            self._last_tick = now
            self._tick()
            self._next_tick = now + self.config.tick_seconds
            if self.config.strip_mode:  # sleep until a device needs the tick
                sim_wait = (min((d.wake_at() for d in self.devices), default=math.inf)
                            - self.clock.monotonic())
                if sim_wait > 0:
                    self._next_tick = max(self._next_tick, now + self.clock.to_wall(sim_wait))
        if now >= self._next_report:
            self._next_report = now + 1.0
            self._write_devices_json()
            self._sample_metrics()
            self._report(now)
            if self.config.slice is not None and parent_stopped():
                self.outbox.commit()  # frozen with its supervisor, holding no lock
                os.kill(os.getpid(), signal.SIGSTOP)  # the supervisor sends SIGCONT on resume
        if self.config.slice is not None:  # never hold the shared outbox's lock while asleep
            self.history.flush()  # acked/evicted lines reach the OS before the commit
            self.outbox.commit()

    def _tick(self) -> None:
        self.ticks += 1
        now = self.clock.monotonic()
        for d in self.devices:
            if now >= d.next_due:
                d.generate()
        self.history.flush()  # generated/evicted/acked lines reach the OS before the commit
        self.outbox.commit()
        for d in self.devices:
            d.pump()
        self.history.flush()  # published lines reach the OS before paho writes the bytes

    def _route(self, events: list[LinkEvent]) -> None:
        if events:  # something changed: tick within tick_seconds (strip mode may be asleep)
            self._next_tick = min(self._next_tick, self._last_tick + self.config.tick_seconds)
        for ev in events:
            device = self.devices[ev.index]
            if ev.kind == "puback":
                device.on_puback(ev.mid, ev.ok)
            elif ev.kind == "connected":
                device.on_connected(ev.session_present)
            elif ev.kind == "disconnected":
                device.on_disconnected()
            elif ev.kind == "message" and is_ingest_status(ev.topic):
                self._ingest_status(device, ev.topic, ev.payload)
            elif ev.kind == "message":
                try:
                    device_id, ranges = decode_ack(ev.payload, self.keys.ack_key(device.device_id))
                except WireError as exc:
                    self._bad_ack(ev.topic, str(exc))
                    continue
                if device_id != device.device_id:
                    self._bad_ack(ev.topic, f"it names {device_id}")
                    continue
                device.on_ack(ranges)

    def _ingest_status(self, device: Device, topic: str, payload: bytes) -> None:
        if not payload:
            return  # the retained status was cleared
        try:
            doc = decode_service_status(payload, self.keys.status_key)
        except WireError as exc:
            self._bad_ack(topic, str(exc))
            return
        device.on_ingest_status(doc["state"] == "online", str(doc["session"]), topic)

    def _bad_ack(self, topic: str, why: str) -> None:
        self.bad_acks += 1
        if self.bad_acks == 1 or self.bad_acks % 1000 == 0:
            self.log(f"ignored a bad ack on {topic} ({self.bad_acks} so far): {why}")

    def shutdown(self) -> None:
        """Stop generating, commit, say offline, disconnect, close. Idempotent."""
        if not self.running:
            return
        self.running = False
        self.log("fleet stopping: committing the outbox and disconnecting")
        try:
            self.history.flush()
            self.outbox.commit()
            self.hub.begin_shutdown()
            for _ in range(60):  # at most ~3 s of real time for the goodbyes
                if self.hub.open_sockets() == 0:
                    break
                self.hub.poll(0.05)
                self._route(self.hub.drain())
            self.hub.close()
            for d in self.devices:
                d.on_disconnected()
            self._write_devices_json()
        finally:
            try:
                self.history.close()  # flushes what the goodbyes routed, before the last commit
            finally:
                self.outbox.close()
        self.log(f"fleet stopped: {sum(d.stats.generated for d in self.devices)} readings "
                 f"generated in this run, {self._buffered()} buffered, "
                 f"{self._evicted()} evicted in total")

    # --- reporting ----------------------------------------------------------------------

    def log(self, message: str) -> None:
        # ecgcore.logline's style; a slice's lines start with [K/N]
        print(f"{stamp(self.clock)} {self._prefix}{message}", file=self._out, flush=True)

    def status(self) -> dict[str, object]:
        """The fleet/devices.json document (docs/architecture.md)."""
        return {
            "pid": os.getpid(),
            "updated_at": round(self.clock.now(), 3),
            "delivery": str(self.config.delivery),
            "devices": {
                link.device_id: {"online": link.online, "since": round(link.since, 3),
                                 "reconnects": link.reconnects, "boot_epoch": link.boot_epoch}
                for link in self.hub.links
            },
        }

    def _buffered(self) -> int:
        """Rows buffered: the whole outbox's, or a slice's own devices' (others share it)."""
        if self.config.slice is None:
            return self.outbox.total()
        return sum(self.outbox.count(d.device_id) for d in self.devices)

    def _evicted(self) -> int:
        """Evictions logged: the whole outbox's, or a slice's own devices'."""
        if self.config.slice is None:
            return self.outbox.evicted()
        return sum(self.outbox.evicted(d.device_id) for d in self.devices)

    def _write_devices_json(self) -> None:
        write_json_atomic(self.config.devices_json, self.status())

    def _sample_metrics(self) -> None:
        """Hand the metrics this process's state and totals (about once a real second)."""
        if self.metrics is None:
            return
        stats = [d.stats for d in self.devices]
        self.metrics.sample(FleetSample(
            devices=len(self.devices), connected=self.hub.online, outbox=self._buffered(),
            evicted=sum(s.evicted for s in stats), generated=sum(s.generated for s in stats),
            published_live=sum(s.published_live for s in stats),
            published_backlog=sum(s.published_backlog for s in stats)))

    def _report(self, now: float) -> None:
        online = self.hub.online
        n = len(self.devices)
        if online != self._logged_online:
            errors = {link.last_error for link in self.hub.links if link.last_error}
            why = f" (last error: {min(errors)})" if errors and online < n else ""
            self.log(f"online {online}/{n} (was {self._logged_online}); outbox "
                     f"{self._buffered()} rows{why}")
            self._logged_online = online
        evicted = self._evicted()
        if evicted != self._logged_evicted and now >= self._next_evict_log:
            self.log(f"outbox full: {evicted - self._logged_evicted} readings evicted "
                     f"({self.config.outbox_policy}), {evicted} in total")
            self._logged_evicted = evicted
            self._next_evict_log = now + 10.0
        skipped = sum(d.stats.skipped_chunks + d.stats.skipped_strips for d in self.devices)
        if skipped != self._logged_skipped:
            what = "strips" if self.config.strip_mode else "chunks"
            self.log(f"the loop fell behind: {skipped - self._logged_skipped} {what} skipped "
                     f"(never generated, no seq used), {skipped} in total")
            self._logged_skipped = skipped


def fleet_since(cfg: FleetConfig, clock: Clock, profiles: list[PatientProfile]) -> list[float]:
    """When each device's signal (and its baseline truth segment) starts: kept from the
    previous fleet/profiles.json for a device with the same seed, else now."""
    previous = read_profiles(cfg.fleet_dir) or {}
    now = round(clock.now(), 3)
    out = []
    for device_id, p in zip(cfg.device_ids(), profiles, strict=True):
        old = previous.get(device_id, {})
        since = old.get("since")
        if old.get("seed") == p.seed and isinstance(since, (int, float)) and since <= now:
            out.append(float(since))
        else:
            out.append(now)
    return out


def write_fleet_profiles(cfg: FleetConfig, clock: Clock, profiles: list[PatientProfile],
                         since: list[float]) -> None:
    """fleet/profiles.json: the patient behind each device of the whole fleet
    (devices/profiles_file.py)."""
    strip = cfg.strip_seconds if cfg.strip_mode else None
    write_profiles(cfg.fleet_dir, (
        (device_id, profile_entry(p, recording=str(cfg.recording), sample_rate_hz=cfg.sample_rate,
                                  chunk_seconds=cfg.chunk_seconds, strip_seconds=strip,
                                  strips_per_day=cfg.strips_per_day,
                                  strip_chunks=cfg.strip_chunks, since=t))
        for device_id, p, t in zip(cfg.device_ids(), profiles, since, strict=True)),
        clock.now())
