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
from ecgcore.credentials import CredentialsError, SecretsDir
from ecgcore.files import read_json, write_json_atomic
from ecgcore.modes import LINKS, Delivery, Link, Recording
from ecgcore.secrets import SecretFileError, read_master_key
from ecgcore.waiting import wait_until
from lab.errors import ComponentError, ConfigError, StateDirError
from lab.provision.provision import is_provisioned, provision
from lab.stack.broker import BrokerSecurity, BrokerSettings, broker_argv, write_config
from lab.stack.ports import free_port, port_open
from lab.stack.procs import EXITED, RUNNING, STOPPED, python_argv
from lab.stack.statedir import COMPONENTS, StackConfig, StateDir, proxy_state_path

Progress = Callable[[str], None]
PROXIES = ("proxy-ingest", "proxy-devices")


def _quiet(msg: str) -> None:
    pass


def broker_settings(sd: StateDir, cfg: StackConfig) -> BrokerSettings:
    return BrokerSettings(port=cfg.port, host=cfg.host, data_dir=sd.broker_dir / "data",
                          log_file=sd.broker_dir / "mosquitto.log", max_queued=cfg.max_queued,
                          persistence=cfg.persistence,
                          security=BrokerSecurity(sd.secrets_dir, cfg.tls) if cfg.secure else None)


def proxy_port(cfg: StackConfig, link: str) -> int:
    """The port `link` (ingest or devices) connects to: its proxy's, or the broker's in a stack
    saved before the proxies existed."""
    return (cfg.proxy_ingest_port if link == Link.INGEST else cfg.proxy_devices_port) or cfg.port


def component_argv(sd: StateDir, cfg: StackConfig, name: str) -> list[str]:
    def common(port: int) -> list[str]:
        return ["--state-dir", str(sd.root), "--host", cfg.host, "--port", str(port),
                "--speed", str(cfg.speed)]

    if name == "broker":
        return broker_argv(sd.broker_dir / "mosquitto.conf")
    if name == "watch":
        return python_argv("lab.stack.watch", *common(cfg.port), *_secret_args(sd, cfg))
    if name in PROXIES:
        link = name.removeprefix("proxy-")
        return python_argv("lab.nemesis.proxy", "--state-dir", str(sd.root), "--name", link,
                           "--listen-host", cfg.host, "--listen-port", str(proxy_port(cfg, link)),
                           "--upstream-host", cfg.host, "--upstream-port", str(cfg.port),
                           "--speed", str(cfg.speed), "--seed", str(cfg.seed))
    if name == "ingest":
        acks = "--acks" if Delivery(cfg.delivery).ingest_confirms else "--no-acks"
        return python_argv("ingest", *common(proxy_port(cfg, "ingest")), acks, *_secret_args(sd, cfg),
                           "--reconnect-max", repr(cfg.ingest_reconnect_max),
                           "--keepalive", str(cfg.ingest_keepalive),
                           "--session-expiry", str(cfg.ingest_session_expiry),
                           "--rate-limit", repr(cfg.ingest_rate_limit),
                           "--rate-burst", str(max(5000, cfg.outbox_capacity)))
    if name == "analysis":
        return python_argv("analysis", "--state-dir", str(sd.root), "--speed", str(cfg.speed))
    if name == "devices":
        return python_argv(
            "devices", *common(proxy_port(cfg, "devices")), "--devices", str(cfg.devices),
            "--delivery", cfg.delivery, *_secret_args(sd, cfg),
            "--outbox-capacity", str(cfg.outbox_capacity), "--outbox-policy", cfg.outbox_policy,
            "--chunk-seconds", str(cfg.chunk_seconds), "--sample-rate", str(cfg.sample_rate),
            "--seed", str(cfg.seed), "--ack-timeout", str(cfg.ack_timeout), "--id-prefix", cfg.id_prefix,
            "--window", str(cfg.window), "--keepalive", str(cfg.keepalive),
            "--reconnect-backoff", cfg.reconnect_backoff, "--backoff-cap", str(cfg.backoff_cap),
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


def _secret_args(sd: StateDir, cfg: StackConfig) -> list[str]:
    """A secure stack (the default): the provisioned secrets (DIR/secrets: passwords,
    certificates, device secrets, the master key), and whether the broker speaks TLS. Each
    component reads only what its identity needs. `up --insecure`: nothing (anonymous,
    plaintext, unsigned)."""
    if not cfg.secure:
        return []
    return ["--secrets-dir", str(sd.secrets_dir), "--tls" if cfg.tls else "--no-tls"]


def device_ids(prefix: str, n: int) -> list[str]:
    """A fleet's device ids (devices.fleet.FleetConfig.device_ids): PREFIX-0000 ..."""
    return [f"{prefix}-{i:04d}" for i in range(n)]


def ensure_provisioned(sd: StateDir, cfg: StackConfig, progress: Progress = _quiet) -> None:
    """A secure stack's identities, made for whatever is not provisioned yet (`ecgpipe
    provision` does the same on its own); damaged secrets stop `up` before anything starts."""
    if not cfg.secure:
        return
    ids = device_ids(cfg.id_prefix, cfg.devices)
    try:
        if sd.ack_key_file.exists():
            read_master_key(sd.ack_key_file)
        if is_provisioned(sd.secrets_dir, ids, tls=cfg.tls):
            SecretsDir(sd.secrets_dir).client("ingest", tls=cfg.tls)  # readable and whole
            return
        progress(provision(sd.secrets_dir, ids, tls=cfg.tls).summary())
    except (SecretFileError, CredentialsError, OSError) as exc:
        raise StateDirError(f"{exc}; delete it to have a new one made, or use --insecure") from exc


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


def _health(sd: StateDir, cfg: StackConfig, name: str,
            pid: int) -> tuple[Callable[[], bool], float, str]:
    """What tells that component `name` (just started as `pid`) is healthy: the condition, its
    default deadline in real seconds, and what it did not do if the wait times out."""
    if name == "broker":
        return (lambda: port_open(cfg.host, cfg.port)), 10, f"accept connections on {cfg.host}:{cfg.port}"
    if name == "ingest":
        return (lambda: (read_json(sd.ingest_ready) or {}).get("pid") == pid), 30, "subscribe"
    if name == "analysis":  # ready.json: neurokit2 imported (a few seconds) and its store open
        return (lambda: (read_json(sd.analysis_ready) or {}).get("pid") == pid), 60, "open its store"
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
    if name == "broker":
        write_config(broker_settings(sd, cfg), sd.broker_dir / "mosquitto.conf")
    if name == "ingest":
        sd.ingest_ready.unlink(missing_ok=True)
    if name == "analysis":
        sd.analysis_ready.unlink(missing_ok=True)
    if name in LINKS and proxy_port(cfg, name) != cfg.port:
        proxy = sd.component(f"proxy-{name}")
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
    for sub in ("broker", "ingest", "analysis", "fleet", "watch", "proxy", "history"):
        shutil.rmtree(sd.root / sub, ignore_errors=True)
    sd.stack_file.unlink(missing_ok=True)
    return had


PORT_ATTEMPTS = 3
PORT_TAKEN = "Address already in use"  # the proxies' and Mosquitto's words, in the log tail


def with_free_ports(cfg: StackConfig) -> StackConfig:
    """Pick a free port for the broker and each proxy left at 0, all different."""
    chosen: dict[str, Any] = {}
    taken = {cfg.port, cfg.proxy_ingest_port, cfg.proxy_devices_port} - {0}
    keys = ("port", "proxy_ingest_port", "proxy_devices_port") if cfg.proxies else ("port",)
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
    return [n for n in COMPONENTS if sd.component(n).state() != EXITED]


def damaged_pidfiles(sd: StateDir) -> list[str]:
    """What is wrong with each pidfile that is there but names no process (one line each)."""
    return [d for d in (sd.component(n).damage() for n in COMPONENTS) if d]


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
            stages = ("ingest", "analysis") if cfg.analysis else ("ingest",)
            for name in ("broker", "watch", *(PROXIES if cfg.proxies else ()), *stages, "devices"):
                start_component(sd, cfg, name, progress)
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
    for name in ("devices", "ingest", "analysis", "watch", *PROXIES, "broker"):
        comp = sd.component(name)
        if comp.state() != EXITED:
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


def kill(sd: StateDir, name: str, signal_name: str = "KILL") -> int:
    sd.config()
    comp = sd.component(name)
    if signal_name.upper() not in ("KILL", "TERM", "STOP"):
        raise ConfigError(f"--signal must be KILL, TERM or STOP, not {signal_name!r}")
    pid = comp.signal(signal_name, by="kill")
    if signal_name.upper() == "STOP":
        comp.wait_state(STOPPED, 5)
    else:
        comp.wait_state(EXITED, 15 if signal_name.upper() == "TERM" else 5)
    return pid


def start(sd: StateDir, name: str, progress: Progress = _quiet) -> int:
    cfg = sd.config()
    comp = sd.component(name)
    if comp.state() == STOPPED:
        raise ComponentError(f"{name} is frozen (SIGSTOP); use `ecgpipe resume {name}`")
    return start_component(sd, cfg, name, progress)


def resume(sd: StateDir, name: str) -> int:
    sd.config()
    comp = sd.component(name)
    if comp.state() != STOPPED:
        raise ComponentError(f"{name} is {comp.state()}, not stopped; nothing to resume")
    pid = comp.signal("CONT")
    comp.wait_state(RUNNING, 5)
    return pid
