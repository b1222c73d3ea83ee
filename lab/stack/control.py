"""Bring a stack up and down, and start, signal or resume one component.

`up` starts broker → watcher → proxy-ingest → proxy-devices → ingest → analysis → fleet, each
as its own session with a pidfile, and returns once each is healthy: the broker accepts TCP,
each proxy has written its state file, ingest has subscribed (ingest/ready.json names its pid),
the analysis has opened its store (analysis/ready.json names its pid), and every device is
online (fleet/devices.json).

Ingest and the fleet reach the broker through their own link proxy (lab.nemesis.proxy), so
`ecgpipe cut|slow|flap` can break one link and not the other; the watcher and `status`
talk to the broker directly.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ecgcore.clock import shared_clock_env
from ecgcore.files import read_json, write_json_atomic
from ecgcore.modes import LINKS, Delivery, Link, Recording
from ecgcore.waiting import wait_until
from lab.errors import ComponentError, ConfigError, StateDirError
from lab.stack import nats_stack as nats
from lab.stack import postgres as pg
from lab.stack.broker import BrokerSecurity, BrokerSettings, broker_argv, write_config
from lab.stack.metrics import METRICS_ARGS
from lab.stack.nats_routes import ROUTE_PROXIES
from lab.stack.ports import free_port, port_open
from lab.stack.procs import EXITED, RUNNING, STOPPED, python_argv
from lab.stack.provisioning import ensure_provisioned
from lab.stack.statedir import StackConfig, StateDir, ingest_components, proxy_state_path, worker_of

Progress = Callable[[str], None]
PROXIES = ("proxy-ingest", "proxy-devices")


def _quiet(msg: str) -> None:
    pass


def broker_settings(sd: StateDir, cfg: StackConfig) -> BrokerSettings:
    return BrokerSettings(port=cfg.port, host=cfg.host, data_dir=sd.broker_dir / "data",
                          log_file=sd.broker_dir / "mosquitto.log", max_queued=cfg.max_queued,
                          persistence=cfg.persistence, autosave_interval=cfg.autosave_interval,
                          security=BrokerSecurity(sd.secrets_dir, cfg.tls) if cfg.secure else None)


def proxy_port(cfg: StackConfig, link: str) -> int:
    """The port `link` (ingest or devices) connects to: its proxy's, or the broker's in a stack
    saved before the proxies existed."""
    return (cfg.proxy_ingest_port if link == Link.INGEST else cfg.proxy_devices_port) or cfg.port


def component_argv(sd: StateDir, cfg: StackConfig, name: str) -> list[str]:
    def common(port: int) -> list[str]:
        return ["--state-dir", str(sd.root), "--host", cfg.host, "--port", str(port),
                "--speed", str(cfg.speed)]

    special = nats.special_argv(sd, cfg, name) if nats.is_nats(cfg) else None
    if special is not None or name in ("broker", pg.COMPONENT):  # the servers (a cluster's watcher)
        return special or (broker_argv(sd.broker_dir / "mosquitto.conf") if name == "broker"
                           else pg.argv(sd, cfg))
    if name == "watch":
        return python_argv("lab.stack.watch", *common(cfg.port), *_secret_args(sd, cfg))
    if name in PROXIES:
        link = name.removeprefix("proxy-")
        return python_argv("lab.nemesis.proxy", "--state-dir", str(sd.root), "--name", link,
                           "--listen-host", cfg.host, "--listen-port", str(proxy_port(cfg, link)),
                           *nats.upstream_args(cfg, link), "--speed", str(cfg.speed), "--seed", str(cfg.seed))
    if name == "ingest" or worker_of(name):
        return _ingest_argv(sd, cfg, worker_of(name), common(proxy_port(cfg, "ingest")))
    if name == "analysis":
        return python_argv("analysis", "--state-dir", str(sd.root), "--speed", str(cfg.speed))
    if name == "devices":
        return python_argv(
            "devices", *common(proxy_port(cfg, "devices")), "--devices", str(cfg.devices),
            "--delivery", cfg.delivery, *_secret_args(sd, cfg), *nats.device_args(cfg),
            "--outbox-capacity", str(cfg.outbox_capacity), "--outbox-policy", cfg.outbox_policy,
            "--chunk-seconds", str(cfg.chunk_seconds), "--sample-rate", str(cfg.sample_rate),
            "--seed", str(cfg.seed), "--ack-timeout", str(cfg.ack_timeout), "--id-prefix", cfg.id_prefix,
            *METRICS_ARGS,
            "--window", str(cfg.window), "--keepalive", str(cfg.keepalive),
            "--reconnect-backoff", cfg.reconnect_backoff, "--backoff-cap", str(cfg.backoff_cap),
            *(["--procs", str(cfg.fleet_procs)] if cfg.fleet_procs > 1 else []),
            *(["--backlog-pace", str(cfg.backlog_pace)] if cfg.backlog_pace else []),
            *(["--record-until", repr(cfg.record_until)] if cfg.record_until is not None else []),
            *(a for spec in cfg.cohorts for a in ("--cohort", spec)),
            *(["--profiles", cfg.profiles] if cfg.profiles else []),
            *(["--profile-file", cfg.profile_file] if cfg.profile_file else []),
            *(a for spec in cfg.episodes for a in ("--episode", spec)),
            *(["--recording", Recording.STRIP.value, "--strip-seconds", str(cfg.strip_seconds),
               "--strips-per-day", str(cfg.strips_per_day), "--strip-chunks", str(cfg.strip_chunks)]
              if cfg.recording == Recording.STRIP else []))
    raise ConfigError(f"unknown component {name!r}; use broker, ingest or devices")


def _ingest_argv(sd: StateDir, cfg: StackConfig, worker: str | None, common: list[str]) -> list[str]:
    """One ingest process. A worker's rate limit is its share of the stack's: the broker hands
    the workers a device's readings in turn, so each sees about 1/N of them."""
    acks = "--acks" if Delivery(cfg.delivery).ingest_confirms else "--no-acks"
    share = cfg.ingest_workers if worker else 1
    return python_argv("ingest", *common, acks, *_secret_args(sd, cfg),
                       *nats.ingest_args(cfg, proxy_port(cfg, "ingest")),
                       *(["--worker", worker] if worker else []),
                       *(["--store-dsn", pg.dsn(cfg)] if cfg.store == "postgres" else []),
                       "--reconnect-max", repr(cfg.ingest_reconnect_max),
                       "--keepalive", str(cfg.ingest_keepalive),
                       "--session-expiry", str(cfg.ingest_session_expiry),
                       "--rate-limit", repr(cfg.ingest_rate_limit / share),
                       "--rate-burst", repr(max(5000, cfg.outbox_capacity) / share), *METRICS_ARGS)


def ingest_ready_path(sd: StateDir, name: str) -> Path:
    """Where ingest process `name` says it has subscribed (ingest.service.worker_file)."""
    worker = worker_of(name)
    return sd.ingest_ready if worker is None else sd.root / "ingest" / f"ready-{worker}.json"


def expand(sd: StateDir, name: str) -> tuple[str, ...]:
    """The components a name on the command line means: `ingest` is every ingest worker."""
    return sd.ingest_names() if name == "ingest" else (name,)


def _secret_args(sd: StateDir, cfg: StackConfig) -> list[str]:
    """A secure stack (the default): the provisioned secrets (DIR/secrets: passwords,
    certificates, device secrets, the master key), and whether the broker speaks TLS. Each
    component reads only what its identity needs. `up --insecure`: nothing (anonymous,
    plaintext, unsigned)."""
    if not cfg.secure:
        return []
    return ["--secrets-dir", str(sd.secrets_dir), "--tls" if cfg.tls else "--no-tls"]


def start_clock(sd: StateDir, lead_s: float = 0.3) -> float:
    """Start the shared simulated clock of a stack saved with clock_anchor_file: write the
    anchor, `lead_s` real seconds ahead so every process has read it by then. Returns it."""
    anchor = time.time() + lead_s
    write_json_atomic(sd.clock_anchor_file, anchor)  # a JSON number is what the clock parses
    return anchor


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        tail = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except FileNotFoundError:
        return ""
    return " | ".join(t.strip() for t in tail)


def clock_env(sd: StateDir, cfg: StackConfig) -> dict[str, str] | None:
    """The environment that puts a component on the stack's shared simulated clock, if any."""
    if cfg.clock_origin is not None and cfg.clock_anchor_file:
        return {**os.environ, **shared_clock_env(cfg.clock_origin, sd.clock_anchor_file)}
    if cfg.clock_origin is not None and cfg.clock_anchor is not None:
        return {**os.environ, **shared_clock_env(cfg.clock_origin, cfg.clock_anchor)}
    return None


def _server_health(cfg: StackConfig, name: str) -> tuple[Callable[[], bool], float, str]:
    if name in nats.NODES:  # `up` then waits for the whole cluster (nats_stack.wait_ready)
        return (lambda: nats.listening(cfg, name)), 20, "listen"
    if name == pg.COMPONENT:
        return (lambda: pg.ready(cfg)), 60, f"accept connections on {cfg.host}:{cfg.pg_port}"
    return (lambda: port_open(cfg.host, cfg.port)), 10, f"accept connections on {cfg.host}:{cfg.port}"


def _health(sd: StateDir, cfg: StackConfig, name: str,
            pid: int) -> tuple[Callable[[], bool], float, str]:
    """What tells that component `name` (just started as `pid`) is healthy: the condition, its
    default deadline in real seconds, and what it did not do if the wait times out."""
    if name in ("broker", pg.COMPONENT, *nats.NODES):  # the servers
        return _server_health(cfg, name)
    if name == "ingest" or worker_of(name) or name == "analysis":
        # ready.json: ingest has subscribed; the analysis imported neurokit2 (a few s), opened its store
        ready = sd.analysis_ready if name == "analysis" else ingest_ready_path(sd, name)
        what = "open its store" if name == "analysis" else "subscribe"
        return (lambda: (read_json(ready) or {}).get("pid") == pid), 60 if name == "analysis" else 30, what
    if name in PROXIES:
        link = name.removeprefix("proxy-")
        return ((lambda: (read_json(proxy_state_path(sd.root, link)) or {}).get("pid") == pid), 10,
                f"listen on {cfg.host}:{proxy_port(cfg, link)}")
    if name == "devices":
        def all_online() -> bool:
            doc = read_json(sd.devices_json) or {}
            devs = doc.get("devices", {})
            return bool(doc.get("pid") == pid and len(devs) == cfg.devices and all(
                d.get("online") for d in devs.values()))
        return all_online, 60 + cfg.devices / 20, f"bring all {cfg.devices} devices online"
    return (lambda: True), 0, "start"


def start_component(sd: StateDir, cfg: StackConfig, name: str, progress: Progress = _quiet,
                    deadline_s: float | None = None) -> int:
    """Start one component and wait until it is healthy."""
    comp = sd.component(name)
    if name == "broker" and not nats.is_nats(cfg):
        write_config(broker_settings(sd, cfg), sd.broker_dir / "mosquitto.conf")
    if name == "ingest" or worker_of(name):
        ingest_ready_path(sd, name).unlink(missing_ok=True)
    if name == pg.COMPONENT:
        pg.prepare(sd)
    if name == "analysis":
        sd.analysis_ready.unlink(missing_ok=True)
    link = "ingest" if worker_of(name) else name
    if link in LINKS and proxy_port(cfg, link) != cfg.port:
        proxy = sd.component(f"proxy-{link}")
        if proxy.state() == EXITED:  # e.g. `ecgpipe start ingest` after `down`: its link comes first
            start_component(sd, cfg, proxy.name, progress)
    pid = comp.start(component_argv(sd, cfg, name), env=clock_env(sd, cfg))
    healthy, default_deadline_s, what = _health(sd, cfg, name, pid)
    ok = wait_until(healthy, deadline_s or default_deadline_s, poll_s=0.1,
                    give_up=lambda: comp.state() != RUNNING)
    if not ok:
        state = comp.state()
        raise ComponentError(f"{name} did not {what} (it is {state}); log {comp.logfile}: "
                             f"{_log_tail(comp.logfile)}")
    progress(f"{name:<13} pid {pid:<7} healthy")
    return pid


def clear_previous_run(sd: StateDir) -> bool:
    had = sd.exists()
    pg.remove_cluster(sd)
    for sub in ("broker", "ingest", "analysis", "fleet", "watch", "proxy", "history", "postgres"):
        shutil.rmtree(sd.root / sub, ignore_errors=True)
    sd.stack_file.unlink(missing_ok=True)
    return had


PORT_ATTEMPTS = 3
PORT_TAKEN = "Address already in use"  # the proxies' and Mosquitto's words, in the log tail


def with_free_ports(cfg: StackConfig) -> StackConfig:
    """Pick a free port for the broker and each proxy left at 0, all different."""
    chosen: dict[str, Any] = {}
    taken = {cfg.port, cfg.proxy_ingest_port, cfg.proxy_devices_port, cfg.pg_port} - {0}
    keys: tuple[str, ...] = ("port", "proxy_ingest_port", "proxy_devices_port") if cfg.proxies else ("port",)
    keys += ("pg_port",) if cfg.store == "postgres" else ()
    cfg = nats.with_ports(cfg, taken)
    taken |= {int(p) for spec in cfg.nats_ports for p in spec.split(":")}
    for key in keys:
        if getattr(cfg, key) == 0:
            port = free_port(cfg.host)
            while port in taken:
                port = free_port(cfg.host)
            chosen[key] = port
            taken.add(port)
    return replace(cfg, **chosen) if chosen else cfg


def live_components(sd: StateDir) -> list[str]:
    """The components whose pidfile names a process that runs (or is frozen), whatever
    stack.json says: what `down` stops and what makes `up` refuse."""
    return [n for n in sd.component_names() if sd.component(n).state() != EXITED]


def damaged_pidfiles(sd: StateDir) -> list[str]:
    """What is wrong with each pidfile that is there but names no process (one line each)."""
    return [d for d in (sd.component(n).damage() for n in sd.component_names()) if d]


def up(sd: StateDir, cfg: StackConfig, progress: Progress = _quiet) -> StackConfig:
    live = live_components(sd)  # stack.json may be gone while its processes run on
    if live:
        raise ComponentError(f"a stack is already running in {sd.root} ({', '.join(live)}); "
                             f"run `ecgpipe down` first or use another --state-dir")
    sd.create()
    if clear_previous_run(sd):
        progress(f"replaced the previous run's files in {sd.root}")
    ensure_provisioned(sd, cfg, progress)  # a damaged secret stops `up` before anything starts
    requested = cfg
    picked = 0 in (cfg.port, *((cfg.proxy_ingest_port, cfg.proxy_devices_port) if cfg.proxies else ()))
    for attempt in range(1, PORT_ATTEMPTS + 1):
        cfg = with_free_ports(requested)
        sd.save_config(cfg)
        try:
            stages = (*ingest_components(cfg.ingest_workers), *(("analysis",) if cfg.analysis else ()))
            store = (pg.COMPONENT,) if cfg.store == "postgres" else ()
            servers = nats.NODES if nats.is_nats(cfg) else ("broker",)
            routes = ROUTE_PROXIES if cfg.nats_route_ports else ()  # the cluster's routes pass them
            for name in (*routes, *servers, "watch", *(PROXIES if cfg.proxies else ()), *store, *stages,
                         "devices"):
                start_component(sd, cfg, name, progress)
                if name == servers[-1] and nats.is_nats(cfg):
                    nats.wait_ready(sd, cfg)
            return cfg
        except ComponentError as exc:
            down(sd)
            # a free port is only free until someone binds it: another stack starting at the
            # same moment (parallel tests, scenario pools) may take one we picked first
            if not (picked and attempt < PORT_ATTEMPTS and PORT_TAKEN in str(exc)):
                raise
            progress(f"a port picked for this stack was taken meanwhile; trying other ports ({attempt})")
        except Exception:
            down(sd)
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def down(sd: StateDir, progress: Progress = _quiet) -> list[str]:
    """Stop the fleet first (so it commits), then ingest, the watcher, the proxies and the
    broker: every process the pidfiles name, whatever stack.json says (start_ticks guards
    against a recycled pid). Keeps the files. Returns the names of those it stopped."""
    stopped = []
    for name in ("devices", *sd.ingest_names(), "analysis", "watch", *PROXIES, *sd.broker_names(),
                 *ROUTE_PROXIES, pg.COMPONENT):
        comp = sd.component(name)
        if comp.state() == EXITED:
            continue
        if name == pg.COMPONENT:
            progress(f"{'postgres':<13} {pg.export_before_stop(sd)}")
        comp.stop(by="down")
        stopped.append(name)
        progress(f"{name:<13} exited")
    return stopped


def down_stack(sd: StateDir, progress: Progress = _quiet) -> None:
    """`ecgpipe down`: `down`, also when stack.json is missing or damaged (the line it ends with
    says so). StateDirError when the state dir holds no stack at all, or, once the rest is
    stopped, when a pidfile is damaged (that component may still run)."""
    try:
        sd.config()
        stack_error = ""
    except StateDirError as exc:
        if not sd.has_pidfiles():
            raise  # no stack here at all
        stack_error = f"{exc}; "
    stopped = down(sd, progress)
    what = ", ".join(stopped) if stopped else "nothing (all had exited)"
    if stack_error and stopped:
        what = f"the {len(stopped)} processes the state dir's pidfiles named ({what})"
    progress(f"down: {stack_error}shut down {what}; files kept in {sd.root}")
    damaged = damaged_pidfiles(sd)
    if damaged:
        more = f" (and {len(damaged) - 1} more damaged pidfiles)" if len(damaged) > 1 else ""
        raise StateDirError(f"{damaged[0]}: if that component still runs, stop it by hand{more}")


def kill(sd: StateDir, name: str, signal_name: str = "KILL") -> list[tuple[str, int]]:
    """Signal a component (each of ingest's workers for `ingest`); returns (name, pid) of each
    one signalled."""
    sd.config()
    if signal_name.upper() not in ("KILL", "TERM", "STOP"):
        raise ConfigError(f"--signal must be KILL, TERM or STOP, not {signal_name!r}")
    if name == nats.LEADER:  # the node leading the readings' stream now
        name = nats.leader(sd, sd.config())
    comps = [(n, sd.component(n)) for n in sd.components_named(name)]
    live = [(n, c) for n, c in comps if c.state() != EXITED] or comps[:1]  # one that exited says so
    done = [(n, comp.signal(signal_name, by="kill")) for n, comp in live]
    for _, comp in live:
        if signal_name.upper() == "STOP":
            comp.wait_state(STOPPED, 5)
        else:
            comp.wait_state(EXITED, 15 if signal_name.upper() == "TERM" else 5)
    return done


def start(sd: StateDir, name: str, progress: Progress = _quiet) -> list[int]:
    """Start a component again (each of ingest's workers that is not running, for `ingest`)."""
    cfg = sd.config()
    names = sd.components_named("broker" if name == nats.LEADER else name)  # the one(s) killed
    for n in names:
        if sd.component(n).state() == STOPPED:
            raise ComponentError(f"{n} is frozen (SIGSTOP); use `ecgpipe resume {n}`")
    todo = [n for n in names if sd.component(n).state() != RUNNING] if len(names) > 1 else names
    pids = [start_component(sd, cfg, n, progress) for n in todo]
    if nats.is_nats(cfg) and set(todo) & set(nats.NODES):
        nats.wait_ready(sd, cfg)  # the cluster has its quorum and its streams have leaders again
    return pids


def resume(sd: StateDir, name: str) -> list[tuple[str, int]]:
    """SIGCONT a frozen component (each frozen ingest worker, for `ingest`)."""
    sd.config()
    comps = [(n, sd.component(n)) for n in sd.components_named(name)]
    frozen = [(n, c) for n, c in comps if c.state() == STOPPED]
    if not frozen:
        raise ComponentError(f"{name} is {comps[0][1].state()}, not stopped; nothing to resume")
    done = [(n, c.signal("CONT")) for n, c in frozen]
    for _, c in frozen:
        c.wait_state(RUNNING, 5)
    return done
