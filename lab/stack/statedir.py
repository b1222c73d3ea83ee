"""The layout of a state dir (see docs/architecture.md) and the stack's saved settings."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ecgcore.files import read_json, write_json_atomic
from ecgcore.modes import (
    BACKOFFS,
    DELIVERY_MODES,
    OUTBOX_POLICIES,
    RECORDINGS,
    Delivery,
    OutboxPolicy,
    Recording,
)
from lab.errors import ConfigError, StateDirError
from lab.stack.procs import Component

DEFAULT_STATE_DIR = ".ecgpipe"
COMPONENTS = ("broker", "ingest", "devices", "watch", "proxy-ingest", "proxy-devices")
# component → (its directory, the name of its pidfile and log)
_LAYOUT = {"broker": ("broker", "broker"), "ingest": ("ingest", "ingest"),
           "devices": ("fleet", "fleet"), "watch": ("watch", "watch"),
           "proxy-ingest": ("proxy", "proxy-ingest"), "proxy-devices": ("proxy", "proxy-devices")}


def resolve_state_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("ECGPIPE_STATE_DIR") or DEFAULT_STATE_DIR).resolve()


# the link proxies' files (lab.nemesis.proxy writes them; the stack and the CLI read them)
def proxy_control_path(state_dir: Path, link: str) -> Path:
    return state_dir / "proxy" / f"{link}.json"


def proxy_state_path(state_dir: Path, link: str) -> Path:
    return state_dir / "proxy" / f"{link}.state.json"


def nemesis_history_path(state_dir: Path) -> Path:
    return state_dir / "history" / "nemesis.jsonl"


@dataclass(frozen=True)
class StackConfig:
    """What `ecgpipe up` started; saved as stack.json so every later command can reuse it."""

    devices: int = 10
    delivery: str = Delivery.END_TO_END.value
    max_queued: int = 1000
    host: str = "127.0.0.1"
    port: int = 0
    persistence: bool = True
    outbox_capacity: int = 5000
    outbox_policy: str = OutboxPolicy.DROP_OLDEST.value
    seed: int = 0
    sample_rate: int = 250
    chunk_seconds: float = 1.0
    ack_timeout: float = 10.0
    speed: float = 1.0
    id_prefix: str = "hc"
    proxy_ingest_port: int = 0  # ingest reaches the broker through this proxy (0: `up` picks one)
    proxy_devices_port: int = 0  # the fleet reaches the broker through this one
    proxies: bool = True  # False: ingest and fleet connect to the broker directly (no network faults)
    recording: str = Recording.CONTINUOUS.value  # or "strip": 30-s strips a few times a day
    strip_seconds: float = 30.0
    strips_per_day: int = 3
    strip_chunks: int = 1
    window: int = 50  # end-to-end: readings in flight per device before it waits for acks
    clock_origin: float | None = None  # shared simulated clock (scenario runs): sim time at the anchor
    clock_anchor: float | None = None  # real Unix time at which simulated time starts moving
    clock_anchor_file: bool = False  # instead: the anchor will be in DIR/clock-anchor (stack.start_clock)
    keepalive: int = 10  # the devices' MQTT keepalive, real seconds
    reconnect_backoff: str = "jitter"  # or "none": every device retries every second, in step
    backlog_pace: float | None = None  # backlog readings per simulated second per device
    backoff_cap: float = 30.0  # the devices' longest reconnect wait, real seconds
    ingest_keepalive: int = 30  # ingest's MQTT keepalive, real seconds (the broker's LWT after 1.5x)
    ingest_session_expiry: int = 86_400  # real seconds the broker keeps ingest's session
    ingest_reconnect_max: float = 4.0  # real seconds: ingest's longest wait to reach the broker again
    record_until: float | None = None  # simulated Unix time after which the devices record nothing
    cohorts: tuple[str, ...] = ()  # devices' --cohort NAME:COUNT[:hr=LO-HI][:strips=N] specs

    def __post_init__(self) -> None:
        object.__setattr__(self, "cohorts", tuple(self.cohorts))
        self._check_words()
        self._check_numbers()

    def _check_words(self) -> None:
        if self.reconnect_backoff not in BACKOFFS:
            raise ConfigError(f"reconnect backoff must be jitter or none, not {self.reconnect_backoff!r}")
        if self.recording not in RECORDINGS:
            raise ConfigError(f"recording must be continuous or strip, not {self.recording!r}")
        if self.delivery not in DELIVERY_MODES:
            raise ConfigError(f"--delivery must be one of {', '.join(DELIVERY_MODES)}, not {self.delivery!r}")
        if self.outbox_policy not in OUTBOX_POLICIES:
            raise ConfigError(f"--outbox-policy must be one of {', '.join(OUTBOX_POLICIES)}, "
                              f"not {self.outbox_policy!r}")

    def _check_numbers(self) -> None:
        if self.backlog_pace is not None and not self.backlog_pace > 0:
            raise ConfigError(f"backlog pace must be more than 0, got {self.backlog_pace}")
        for name, alive in (("keepalive", self.keepalive), ("ingest keepalive", self.ingest_keepalive)):
            if not 1 <= alive <= 65535:
                raise ConfigError(f"{name} must be 1..65535 s, got {alive}")
        if not self.backoff_cap >= 0.5:
            raise ConfigError(f"backoff cap must be at least 0.5 s, got {self.backoff_cap}")
        for name, value, lo in (("devices", self.devices, 1), ("max_queued", self.max_queued, 1),
                                ("outbox_capacity", self.outbox_capacity, 1),
                                ("sample_rate", self.sample_rate, 1)):
            if value < lo:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least {lo}, got {value}")
        if self.devices > 10_000:
            raise ConfigError(f"--devices {self.devices} is more than one fleet process drives (10000)")
        for name, value in (("proxy_ingest_port", self.proxy_ingest_port),
                            ("proxy_devices_port", self.proxy_devices_port), ("port", self.port)):
            if not 0 <= value <= 65535:
                raise ConfigError(f"{name.replace('_', ' ')} {value} is not in 0..65535")
        positive: tuple[tuple[str, float], ...] = (
            ("chunk_seconds", self.chunk_seconds), ("ack_timeout", self.ack_timeout), ("speed", self.speed))
        for name, amount in positive:
            if not amount > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {amount}")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StackConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


class StateDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def clock_anchor_file(self) -> Path:
        return self.root / "clock-anchor"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    @property
    def ingest_db(self) -> Path:
        return self.root / "ingest" / "ingest.sqlite"

    @property
    def ingest_ready(self) -> Path:
        return self.root / "ingest" / "ready.json"

    @property
    def outbox_db(self) -> Path:
        return self.root / "fleet" / "outbox.sqlite"

    @property
    def devices_json(self) -> Path:
        return self.root / "fleet" / "devices.json"

    @property
    def sys_history(self) -> Path:
        return self.root / "watch" / "sys.jsonl"

    @property
    def proxy_dir(self) -> Path:
        return self.root / "proxy"

    @property
    def nemesis_history(self) -> Path:
        return self.root / "history" / "nemesis.jsonl"

    def component(self, name: str) -> Component:
        layout = _LAYOUT.get(name)
        if layout is None:
            raise ConfigError(f"unknown component {name!r}; use broker, ingest or devices")
        return Component(layout[1], self.root / layout[0])

    def config(self) -> StackConfig:
        doc = read_json(self.stack_file)
        if doc is None:
            raise StateDirError(f"no stack in {self.root}: run `ecgpipe up` first (or pass --state-dir)")
        return StackConfig.from_json(doc)

    def save_config(self, cfg: StackConfig) -> None:
        write_json_atomic(self.stack_file, asdict(cfg))

    def exists(self) -> bool:
        return self.stack_file.exists()
