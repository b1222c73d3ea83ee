"""The layout of a state dir (see docs/architecture.md) and the stack's saved settings."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ecgcore.files import JsonFileError, json_type, load_json, write_json_atomic
from ecgcore.modes import (
    BACKOFFS,
    DELIVERY_MODES,
    OUTBOX_POLICIES,
    RECORDINGS,
    Delivery,
    OutboxPolicy,
    Recording,
)
from lab.errors import ConfigError, SettingError, StateDirError
from lab.stack.nats_routes import ROUTE_PROXIES
from lab.stack.procs import Component

DEFAULT_STATE_DIR = ".ecgpipe"
COMPONENTS = ("broker", "ingest", "analysis", "devices", "watch", "proxy-ingest", "proxy-devices")
# component → (its directory, the name of its pidfile and log)
_LAYOUT = {"broker": ("broker", "broker"), "ingest": ("ingest", "ingest"),
           "postgres": ("postgres", "postgres"),
           **{f"nats-{i}": (f"broker/nats-{i}", f"nats-{i}") for i in (1, 2, 3)},
           "analysis": ("analysis", "analysis"), "devices": ("fleet", "fleet"), "watch": ("watch", "watch"),
           "proxy-ingest": ("proxy", "proxy-ingest"), "proxy-devices": ("proxy", "proxy-devices"),
           **{p: ("proxy", p) for p in ROUTE_PROXIES}}


MAX_INGEST_WORKERS = 16
_WORKER = re.compile(r"ingest-([1-9][0-9]?)")


def ingest_components(workers: int) -> tuple[str, ...]:
    """Ingest's components: `ingest`, or its workers ingest-1 .. ingest-N when several share
    the readings (then `ingest` names them all)."""
    return ("ingest",) if workers <= 1 else tuple(f"ingest-{i}" for i in range(1, workers + 1))


def worker_of(name: str) -> str | None:
    """The worker name (`--worker`) of component ingest-K, or None for any other component."""
    m = _WORKER.fullmatch(name)
    return m.group(1) if m and int(m.group(1)) <= MAX_INGEST_WORKERS else None


def resolve_state_dir(arg: str | None) -> Path:
    raw = arg or os.environ.get("ECGPIPE_STATE_DIR") or DEFAULT_STATE_DIR
    try:
        return Path(raw).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise StateDirError(f"--state-dir {raw}: cannot resolve it ({exc})") from exc


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
    autosave_interval: int = 2  # Mosquitto's snapshot period, real seconds (its default: 1800)
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
    ingest_rate_limit: float = 20.0  # per device, messages per simulated s (0: none); burst: outbox capacity
    ingest_reconnect_max: float = 4.0  # real seconds: ingest's longest wait to reach the broker again
    record_until: float | None = None  # simulated Unix time after which the devices record nothing
    analysis: bool = True  # start the analysis stage (clinical events); scenario runs: when clinical
    cohorts: tuple[str, ...] = ()  # devices' --cohort NAME:COUNT[:hr=LO-HI][:strips=N][:profile=ENTRY] specs
    profiles: str | None = None  # devices' --profiles: a catalogue mix, "sinus:70%,af:10%,..."
    profile_file: str | None = None  # devices' --profile-file: the user's own catalogue (TOML)
    episodes: tuple[str, ...] = ()  # devices' --episode KIND@START+DURATION:devices=RANGES specs
    secure: bool = True  # provisioned identities, ACL, signed readings and acks; False: `up --insecure`
    tls: bool = True  # with secure: the broker's only listener is TLS (mutual); False: `up --no-tls`
    ingest_workers: int = 1  # ingest processes sharing the readings (a shared subscription); docs/scale.md
    store: str = "sqlite"  # or "postgres": a PostgreSQL the stack runs (lab/stack/postgres.py)
    broker: str = "mosquitto"  # or "nats-cluster": three NATS nodes (lab/stack/nats_stack.py)
    nats_ports: tuple[str, ...] = ()  # nats-cluster: each node's "client:cluster:mqtt:http"
    nats_route_ports: tuple[str, ...] = ()  # nats-cluster with proxies: each route proxy's port (nats_routes)
    pg_port: int = 0  # with store postgres: its port on host (0: `up` picks one)
    fleet_procs: int = 1  # processes the fleet runs in (devices --procs N): 10,000 devices each at most

    def __post_init__(self) -> None:
        object.__setattr__(self, "cohorts", tuple(self.cohorts))
        object.__setattr__(self, "episodes", tuple(self.episodes))
        for name in ("profiles", "profile_file"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise SettingError(name, f"must be a non-empty string, got {value!r}")
        if not all(isinstance(e, str) and "@" in e for e in self.episodes):
            raise SettingError("episodes", f"each must be KIND@START+DURATION[:devices=...], got "
                                           f"{list(self.episodes)!r}")
        self._check_words()
        self._check_numbers()

    def _check_words(self) -> None:
        if self.broker not in ("mosquitto", "nats-cluster"):
            raise SettingError("broker", f"must be mosquitto or nats-cluster, not {self.broker!r}",
                               option=True)
        if self.store not in ("sqlite", "postgres"):
            raise SettingError("store", f"must be sqlite or postgres, not {self.store!r}", option=True)
        if self.reconnect_backoff not in BACKOFFS:
            raise SettingError("reconnect_backoff", f"must be jitter or none, not {self.reconnect_backoff!r}")
        if self.recording not in RECORDINGS:
            raise SettingError("recording", f"must be continuous or strip, not {self.recording!r}")
        if self.delivery not in DELIVERY_MODES:
            raise SettingError("delivery", f"must be one of {', '.join(DELIVERY_MODES)}, "
                               f"not {self.delivery!r}", option=True)
        if self.outbox_policy not in OUTBOX_POLICIES:
            raise SettingError("outbox_policy", f"must be one of {', '.join(OUTBOX_POLICIES)}, "
                               f"not {self.outbox_policy!r}", option=True)

    def _check_rate_limit(self) -> None:
        workers = self.ingest_workers
        if not 1 <= workers <= MAX_INGEST_WORKERS:
            raise SettingError("ingest_workers", f"must be 1..{MAX_INGEST_WORKERS}, got {workers}",
                               option=True)
        if not 1 <= self.fleet_procs <= min(16, max(1, self.devices)):  # the fleet's processes too
            raise SettingError("fleet_procs", f"must be 1..16 and at most --devices, got {self.fleet_procs}",
                               option=True)
        limit = self.ingest_rate_limit
        if not (isinstance(limit, int | float) and limit >= 0 and math.isfinite(limit)):
            raise SettingError("rate_limit", f"must be 0 (none) or more, got {limit}", option=True)

    def _check_numbers(self) -> None:
        self._check_rate_limit()
        if self.backlog_pace is not None and not self.backlog_pace > 0:
            raise SettingError("backlog_pace", f"must be more than 0, got {self.backlog_pace}")
        for name, alive in (("keepalive", self.keepalive), ("ingest_keepalive", self.ingest_keepalive)):
            if not 1 <= alive <= 65535:
                raise SettingError(name, f"must be 1..65535 s, got {alive}")
        if not self.backoff_cap >= 0.5:
            raise SettingError("backoff_cap", f"must be at least 0.5 s, got {self.backoff_cap}")
        for name, value, lo in (("devices", self.devices, 1), ("max_queued", self.max_queued, 1),
                                ("autosave_interval", self.autosave_interval, 1),
                                ("outbox_capacity", self.outbox_capacity, 1),
                                ("sample_rate", self.sample_rate, 1)):
            if value < lo:
                raise SettingError(name, f"must be at least {lo}, got {value}", option=True)
        if self.devices > 10_000 * self.fleet_procs:
            raise SettingError("devices", f"{self.devices} is more than {self.fleet_procs} fleet process(es)"
                               " drive (10000 each; up --fleet-procs N)", option=True)
        for name, value in (("proxy_ingest_port", self.proxy_ingest_port),
                            ("proxy_devices_port", self.proxy_devices_port), ("port", self.port)):
            if not 0 <= value <= 65535:
                raise SettingError(name, f"{value} is not in 0..65535")
        positive: tuple[tuple[str, float], ...] = (
            ("chunk_seconds", self.chunk_seconds), ("ack_timeout", self.ack_timeout), ("speed", self.speed))
        for name, amount in positive:
            if not amount > 0:
                raise SettingError(name, f"must be positive, got {amount}", option=True)

    @classmethod
    def from_json(cls, doc: object, source: Path | str = "stack.json") -> StackConfig:
        """The settings saved in `source`. Whatever is wrong in them (not an object, a value of
        the wrong type or out of range) is a StateDirError naming the file and the key, never the
        command-line option that nobody passed. Keys it does not know are ignored."""
        if not isinstance(doc, dict):
            raise StateDirError(f"{source} is damaged: it holds {json_type(doc)}, not an object")
        values = {k: v for k, v in doc.items() if k in _KINDS}
        for key, value in values.items():
            wrong = _wrong_kind(key, value)
            if wrong:
                raise StateDirError(f"{source}: {key} must be {wrong}, not {json.dumps(value)}")
        try:
            return cls(**values)
        except SettingError as exc:
            raise StateDirError(f"{source}: {exc.key} {exc.rule}") from exc


# the JSON kind of each StackConfig field, from its annotation: (Python types, in words)
_KIND_OF_TYPE: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "an integer"), "float": ((int, float), "a number"), "str": ((str,), "a string"),
    "bool": ((bool,), "true or false"), "tuple[str, ...]": ((list, tuple), "an array of strings")}
_CHOICES = ("delivery", "outbox_policy", "recording", "reconnect_backoff")  # _check_words names the choices
_KINDS = {f.name: str(f.type) for f in fields(StackConfig)}


def _wrong_kind(key: str, value: object) -> str | None:
    """What `value` should have been for field `key` (in words), or None if its kind fits."""
    kind = _KINDS[key]
    optional = kind.endswith(" | None")
    types, words = _KIND_OF_TYPE[kind.removesuffix(" | None")]
    if key in _CHOICES or (optional and value is None):
        return None
    ok = isinstance(value, types) and (bool not in types) == (not isinstance(value, bool))
    if ok and isinstance(value, list | tuple):
        ok = all(isinstance(v, str) for v in value)
    return None if ok else words + (" or null" if optional else "")


class StateDir:
    """A state dir's paths, its saved settings and its components' pidfiles.

    A path that is there but is not a directory is refused when the StateDir is made, so every
    command says so in one line; `create` makes a missing one (for `up`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if root.exists() and not root.is_dir():
            raise StateDirError(f"--state-dir {root} is a file, not a directory")

    def create(self) -> None:
        """Make the state dir (and its parents) if it is not there yet."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirError(f"cannot create state dir {self.root}: {exc.strerror or exc}") from exc

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
    def analysis_db(self) -> Path:
        return self.root / "analysis" / "analysis.sqlite"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def ack_key_file(self) -> Path:
        return self.secrets_dir / "ack.key"

    @property
    def analysis_ready(self) -> Path:
        return self.root / "analysis" / "ready.json"

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
        layout = ("ingest", name) if worker_of(name) else _LAYOUT.get(name)
        if layout is None:
            raise ConfigError(f"unknown component {name!r}; use broker, ingest or devices")
        return Component(layout[1], self.root / layout[0])

    def config(self) -> StackConfig:
        """The settings `up` saved in stack.json. StateDirError (one line, naming the file) when
        there is none, or it cannot be read, or it is not JSON, or a value in it is wrong."""
        try:
            doc = load_json(self.stack_file)
        except JsonFileError as exc:
            raise StateDirError(f"stack.json is damaged: {exc}") from exc
        if doc is None and self.has_pidfiles():
            raise StateDirError(f"stack.json is missing: {self.stack_file} (the stack's settings) "
                                f"is not there, though the components' pidfiles are")
        if doc is None:
            raise StateDirError(f"no stack in {self.root}: run `ecgpipe up` first (or pass --state-dir)")
        return StackConfig.from_json(doc, self.stack_file)

    def has_pidfiles(self) -> bool:
        """Whether any component's pidfile is there (damaged or not)."""
        return any(os.path.lexists(self.component(n).pidfile)
                   for n in (*COMPONENTS, "postgres", "nats-1", "nats-2", "nats-3", *ROUTE_PROXIES,
                             *self._workers_on_disk()))

    def _workers_on_disk(self) -> list[str]:
        """The ingest workers with a pidfile (or a link in its place) in DIR/ingest."""
        try:
            found = [p.name.removesuffix(".pid") for p in (self.root / "ingest").glob("ingest-*.pid")]
        except OSError:
            return []
        return sorted((n for n in found if worker_of(n)), key=lambda n: int(n.split("-")[1]))

    def ingest_names(self) -> tuple[str, ...]:
        """Ingest's components here: the saved stack's (`ingest`, or ingest-1 .. ingest-N), and
        any worker whose pidfile is there (a stack.json that is missing or damaged names none)."""
        try:
            saved = ingest_components(self.config().ingest_workers)
        except StateDirError:
            saved = ()
        extra = [n for n in self._workers_on_disk() if n not in saved]
        return (*saved, *extra) or ("ingest",)

    def components_named(self, name: str) -> tuple[str, ...]:
        """The components a name on the command line means: `ingest` is every ingest worker, and a
        worker (ingest-K) must be one of this stack's; `broker` is every NATS node of a cluster."""
        names = self.ingest_names()
        if name == "ingest":
            return names
        if name == "broker" or name.startswith("nats-"):
            nodes = self.broker_names()
            if name != "broker" and name not in nodes:
                raise ConfigError(f"this stack has no {name}; its broker is {', '.join(nodes)}")
            return nodes if name == "broker" else (name,)
        if worker_of(name) and name not in names:
            raise ConfigError(f"this stack has no {name}; its ingest is {', '.join(names)}")
        if name == "postgres" and not self._has_postgres():
            raise ConfigError("this stack has no postgres: its store is SQLite (`up --store postgres`)")
        return (name,)

    def component_names(self) -> tuple[str, ...]:
        """Every component of this state dir, in COMPONENTS' order, ingest's workers in ingest's
        place when it has several, and the PostgreSQL store's server when it has one."""
        routes = tuple(p for p in ROUTE_PROXIES if os.path.lexists(self.component(p).pidfile))
        workers, nodes = self.ingest_names(), (*self.broker_names(), *routes)  # a cluster's route proxies
        names = tuple(x for c in COMPONENTS
                      for x in (workers if c == "ingest" else nodes if c == "broker" else (c,)))
        return (*names, "postgres") if self._has_postgres() else names

    def broker_names(self) -> tuple[str, ...]:
        """`broker`, or the NATS nodes of a stack saved with --broker nats-cluster (or whose
        node pidfiles are there when stack.json is not readable)."""
        try:
            nats = self.config().broker == "nats-cluster"
        except StateDirError:
            nats = any(os.path.lexists(self.component(f"nats-{i}").pidfile) for i in (1, 2, 3))
        return tuple(f"nats-{i}" for i in (1, 2, 3)) if nats else ("broker",)

    def _has_postgres(self) -> bool:
        try:
            return self.config().store == "postgres"
        except StateDirError:
            return os.path.lexists(self.component("postgres").pidfile)

    def save_config(self, cfg: StackConfig) -> None:
        write_json_atomic(self.stack_file, asdict(cfg))

    def exists(self) -> bool:
        return self.stack_file.exists()
