"""Handlers of whole runs: demo, scenario list and run; the ingest service in the foreground."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import partial

from ecgcore.modes import DELIVERY_MODES, Delivery
from lab.cli.output import quiet, say, state_dir
from lab.errors import UsageError
from lab.stack.statedir import StateDir


def demo(args: argparse.Namespace) -> int:
    from lab.demo import run_demo

    sd = state_dir(args)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in DELIVERY_MODES]
    if bad or not modes:
        raise UsageError(f"--modes takes a comma-separated list of {', '.join(DELIVERY_MODES)}, "
                         f"not {args.modes!r}")
    if args.devices < 1 or args.outage <= 0 or args.max_queued < 1:
        raise UsageError("--devices, --outage and --max-queued must be positive")
    return run_demo(sd.root, devices=args.devices, outage_s=args.outage, max_queued=args.max_queued,
                    modes=modes, as_json=args.json)


def scenario_list(_args: argparse.Namespace) -> int:
    from lab.scenario import list_scenarios
    from lab.scenario.files import SCENARIO_DIR

    for name, description in list_scenarios(SCENARIO_DIR):
        print(f"{name:<32} {description}")
    return 0


def _speed(arg: str, auto: Callable[[], float]) -> float:
    """--speed: a positive number, or "auto" (what `auto` computes for the scenario)."""
    if arg == "auto":
        return auto()
    try:
        speed = float(arg)
    except ValueError:
        raise UsageError(f"--speed must be a number or auto, not {arg!r}") from None
    if not speed > 0:
        raise UsageError(f"--speed must be more than 0, got {speed:g}")
    return speed


def scenario_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lab.scenario import load_scenario
    from lab.scenario.files import auto_speed, resolve_scenario
    from lab.scenario.outputs import exit_code
    from lab.scenario.runner import run_variant, summary, with_chunk, with_devices

    scn = load_scenario(resolve_scenario(args.file))
    variants = [with_chunk(with_devices(scn.variant(v), args.devices), args.chunk_seconds)
                for v in (args.variant or [v.name for v in scn.variants])]
    speed = _speed(args.speed, partial(auto_speed, scn, variants))
    out = Path(args.out or Path("ecgpipe-runs") / scn.name).resolve()
    progress = quiet if args.json else say
    runs = [run_variant(scn, v, speed, out, progress) for v in variants]
    if args.json:
        print(json.dumps({r.variant: r.report for r in runs}, indent=1, sort_keys=True, default=str))
    else:
        say(f"\n=== {scn.name}: {scn.description}")
        say(summary(runs))
        say(f"figures: timeline.png, gaps.png, strip.png under {out}/<variant>/")
    return exit_code(runs)


def ingest_run(args: argparse.Namespace) -> int:
    """`python -m ingest` in the foreground, pointed at the stack's broker (through the ingest
    link's proxy while it runs, so `ecgpipe cut ingest` applies), with the stack's speed and
    --acks for its delivery mode, unless the options say otherwise."""
    from ingest.__main__ import main as ingest_main

    sd = state_dir(args)
    argv = ["--state-dir", str(sd.root),
            *(["--client-id", args.client_id] if args.client_id else []),
            *(["--worker", args.worker] if args.worker else []),
            "--keepalive", str(args.keepalive), "--session-expiry", str(args.session_expiry),
            "--reconnect-max", repr(args.reconnect_max), "--rate-limit", repr(args.rate_limit),
            "--rate-burst", repr(args.rate_burst),
            *(["--metrics-port", str(args.metrics_port), "--metrics-host", args.metrics_host]
              if args.metrics_port is not None else [])]
    given = {"--host": args.host, "--port": args.port, "--speed": args.speed}
    if None in given.values() or args.acks is None:
        from lab.stack.control import proxy_port
        from lab.stack.procs import RUNNING

        cfg = sd.config()  # a clear error if there is no stack to take the broker from
        proxied = sd.component("proxy-ingest").state() == RUNNING
        stack = {"--host": cfg.host, "--port": proxy_port(cfg, "ingest") if proxied else cfg.port,
                 "--speed": cfg.speed}
        given = {k: stack[k] if v is None else v for k, v in given.items()}
        acks = Delivery(cfg.delivery).ingest_confirms if args.acks is None else args.acks
        if args.secrets_dir is None and cfg.secure:  # the stack's broker wants ingest's login
            argv += ["--secrets-dir", str(sd.secrets_dir)]
            if args.tls is None:
                argv += ["--tls" if cfg.tls else "--no-tls"]
    else:
        acks = args.acks
    if args.secrets_dir is not None:
        argv += ["--secrets-dir", str(args.secrets_dir)]
    if args.tls is not None:
        argv += ["--tls" if args.tls else "--no-tls"]
    for flag, value in given.items():
        argv += [flag, str(value)]
    argv += _engine_args(args, sd)
    return ingest_main([*argv, "--acks" if acks else "--no-acks"], prog="ecgpipe ingest run")


def _engine_args(args: argparse.Namespace, sd: StateDir) -> list[str]:
    """The store and the source of readings: as given, else the stack's (its PostgreSQL, its
    NATS cluster through the ingest link's proxy), else SQLite and MQTT."""
    out = ["--nats-ack-wait", repr(args.nats_ack_wait)]
    if args.nats:
        out += ["--nats", ",".join(args.nats)]
    if args.mqtt_servers:
        out += ["--mqtt-servers", ",".join(f"{h}:{p}" for h, p in args.mqtt_servers)]
    if args.store_dsn:
        out += ["--store-dsn", args.store_dsn]
    if (args.nats and args.store_dsn) or not sd.exists():
        return out
    from lab.stack import nats_stack, postgres
    from lab.stack.control import proxy_port

    cfg = sd.config()
    if not args.nats:
        out += nats_stack.ingest_args(cfg, proxy_port(cfg, "ingest"))
    if not args.store_dsn and cfg.store == "postgres":
        out += ["--store-dsn", postgres.dsn(cfg)]
    return out
