"""The handlers that change the stack (up, status, down, kill, start, resume, and the link faults),
each `(args) -> int`, and `handlers()`, the table main dispatches on. The looking commands
live in lab/cli/looking.py, whole runs in lab/cli/runs.py, what they share in lab/cli/output.py.

A handler imports what its command needs when it runs, so `ecgpipe status` does not load numpy,
matplotlib or neurokit2. A handler raises LabError for anything the user can fix; main turns
that into one line and exit status 1 (2 for a UsageError).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from lab.cli.output import Handler, emit, quiet, say, state_dir
from lab.errors import ConfigError, LabError, UsageError
from lab.stack.statedir import StackConfig, StateDir


def up(args: argparse.Namespace) -> int:
    from lab.stack import control as stack

    sd = state_dir(args)
    try:
        cfg = StackConfig(devices=args.devices, delivery=args.delivery, max_queued=args.max_queued,
                          outbox_capacity=args.outbox_capacity, outbox_policy=args.outbox_policy,
                          sample_rate=args.sample_rate, chunk_seconds=args.chunk_seconds,
                          ack_timeout=args.ack_timeout, seed=args.seed,
                          persistence=not args.no_persistence, proxies=not args.no_proxy,
                          secure=not args.insecure, tls=not (args.insecure or args.no_tls),
                          ingest_rate_limit=args.rate_limit, ingest_workers=args.ingest_workers,
                          store=args.store, broker=args.broker, fleet_procs=args.fleet_procs,
                          profiles=args.profiles, profile_file=args.profile_file,
                          episodes=tuple(args.episodes or ()))
    except ConfigError as exc:  # every value here came from the command line: bad usage
        raise UsageError(str(exc)) from None
    _check_patients(cfg)
    progress = quiet if args.json else say
    _refuse_to_overwrite(sd, replace=args.replace)
    progress(f"starting {cfg.devices} devices ({cfg.delivery}) in {sd.root} ...")
    cfg = stack.up(sd, cfg, progress=progress)
    if args.json:
        from lab.report.status import status as stack_status
        print(json.dumps(stack_status(sd), indent=1, sort_keys=True))
    else:
        links = (f"ingest via :{cfg.proxy_ingest_port}, devices via :{cfg.proxy_devices_port}"
                 if cfg.proxies else "ingest and devices directly: no link faults")
        faults = "ecgpipe cut devices --for 30s | " if cfg.proxies else ""
        say(f"up: broker on {cfg.host}:{cfg.port} ({links}). Next: ecgpipe status --watch | "
            f"ecgpipe kill ingest | {faults}ecgpipe inspect devices | ecgpipe tail | ecgpipe logs | "
            f"ecgpipe report | ecgpipe down")
    return 0


def provision(args: argparse.Namespace) -> int:
    """`ecgpipe provision`: identities for N devices and the services; SIGHUP to a running broker
    of this state dir so it reads the new password file and ACL."""
    from lab.provision.provision import provision as make
    from lab.stack.procs import RUNNING
    from lab.stack.provisioning import device_ids

    sd = state_dir(args)
    ids = device_ids(args.id_prefix, args.devices)
    sd.root.mkdir(parents=True, exist_ok=True)
    try:
        done = make(sd.secrets_dir, ids, tls=not args.no_tls)
    except OSError as exc:
        raise ConfigError(f"cannot write {sd.secrets_dir}: {exc}") from exc
    broker = sd.component("broker")
    reloaded = broker.state() == RUNNING
    if reloaded:
        broker.signal("HUP")
    if args.json:
        print(json.dumps({"secrets_dir": str(done.secrets_dir), "devices": done.devices,
                          "added": done.added, "tls": done.tls, "made_ca": done.made_ca,
                          "broker_reloaded": reloaded}, indent=1, sort_keys=True))
    else:
        say(done.summary() + ("; the running broker reloaded them" if reloaded else ""))
    return 0


def attack(args: argparse.Namespace) -> int:
    """`ecgpipe attack`: lab.nemesis.attacker in the foreground; Ctrl-C stops it."""
    import threading

    from lab.nemesis.attacker import run

    sd = state_dir(args)
    sd.config()  # a clear error when there is no stack
    count = 100 if args.count is None and args.seconds is None else args.count
    try:
        doc = run(sd, args.kind, args.identity, args.victim, rate=args.rate, count=count,
                  seconds=args.seconds, seed=0, stop=threading.Event(), size=args.size)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"attack: {exc}") from exc
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    elif not doc["connected"]:
        say(f"attack {args.kind} as {doc['as']}: the broker refused the connection "
            f"({doc['refused_at_connect']}); nothing sent")
    else:
        pubacks = doc["pubacks"] if isinstance(doc["pubacks"], dict) else {}
        answers = ", ".join(f"{n} {why}" for why, n in sorted(pubacks.items()))
        say(f"attack {args.kind} as {doc['as']} on {args.victim}: sent {doc['sent']}; the broker "
            f"answered {answers or 'nothing'} (see `ecgpipe inspect ingest` for what ingest quarantined)")
    return 0


def _check_patients(cfg: StackConfig) -> None:
    """--profiles, --profile-file and --episode as the fleet will read them: a bad one is bad
    usage, said now rather than in the fleet's log after `up` has started the broker."""
    from pathlib import Path

    from devices.catalogue import load_catalogue, parse_episode, parse_mix
    from devices.errors import ProfileError

    try:
        catalogue = load_catalogue(Path(cfg.profile_file) if cfg.profile_file else None)
        if cfg.profiles:
            parse_mix(cfg.profiles, catalogue)
        for spec in cfg.episodes:
            parse_episode(spec, catalogue)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None


def _refuse_to_overwrite(sd: StateDir, *, replace: bool) -> None:
    """`up` neither starts a second stack on a running one nor silently discards a finished
    run's files (its ledger): it refuses, with what to do instead."""
    from lab.stack.procs import RUNNING, STOPPED

    if not sd.root.is_dir():
        return
    live = [n for n in sd.component_names() if sd.component(n).state() in (RUNNING, STOPPED)]
    if live:
        raise LabError(f"a stack is already running in {sd.root} ({', '.join(live)}); run "
                       f"`ecgpipe down --state-dir {sd.root}` first, or use another --state-dir")
    previous = [p for p in (sd.stack_file, sd.outbox_db, sd.ingest_db) if p.exists()]
    if previous and not replace:
        raise LabError(f"{sd.root} holds a finished run ({', '.join(p.name for p in previous)}): "
                       f"read it with `ecgpipe report --state-dir {sd.root}`, then `ecgpipe up "
                       f"--replace` discards it; or pass another --state-dir")


def status(args: argparse.Namespace) -> int:
    """Exit 1 after the view when stack.json or a pidfile is damaged (lab.report.status)."""
    from lab.report.status import format_status, raise_problems
    from lab.report.status import status as stack_status

    doc = stack_status(state_dir(args))
    emit(doc, args.json, format_status)
    raise_problems(doc)
    return 0


def down(args: argparse.Namespace) -> int:
    """Stops what the pidfiles name, whatever stack.json says (lab.stack.control.down_stack)."""
    from lab.stack import control as stack

    stack.down_stack(state_dir(args), progress=say)
    return 0


def kill(args: argparse.Namespace) -> int:
    from lab.stack import control as stack

    sd = state_dir(args)
    for name, pid in stack.kill(sd, args.component, args.signal):
        say(f"sent SIG{args.signal} to {name} (pid {pid}); it is now {sd.component(name).state()}")
    return 0


def start(args: argparse.Namespace) -> int:
    from lab.stack import control as stack

    stack.start(state_dir(args), args.component, progress=say)
    return 0


def resume(args: argparse.Namespace) -> int:
    from lab.stack import control as stack

    sd = state_dir(args)
    for name, pid in stack.resume(sd, args.component):
        say(f"resumed {name} (pid {pid}); it is now {sd.component(name).state()}")
    return 0


def _on_link(args: argparse.Namespace, fault_kind: str, **params: Any) -> int:
    """Send one fault (or heal) to the link's proxy and print its account of what it did."""
    from ecgcore.clock import make_clock
    from lab.nemesis.proxyctl import command

    sd = state_dir(args)
    clock = make_clock(sd.config().speed)
    say(command(sd, args.link, fault_kind, clock, **params))
    return 0


def cut(args: argparse.Namespace) -> int:
    return _on_link(args, "blackhole" if args.blackhole else "cut", for_s=args.for_s)


def heal(args: argparse.Namespace) -> int:
    if args.link.startswith("nats-"):  # a NATS node's partition
        from lab.cli.partition_args import on_routes

        return on_routes(args, heal=True)
    return _on_link(args, "heal")


def slow(args: argparse.Namespace) -> int:
    if not (args.latency or args.jitter or args.bandwidth):  # bad usage (2) before no stack (1)
        raise UsageError("slow needs --latency, --jitter or --bandwidth (e.g. --latency 200ms)")
    return _on_link(args, "slow", for_s=args.for_s, latency_s=args.latency, jitter_s=args.jitter,
                    bandwidth_bytes_s=args.bandwidth)


def flap(args: argparse.Namespace) -> int:
    return _on_link(args, "flap", for_s=args.for_s, up_s=args.up, down_s=args.down)


def handlers() -> dict[str, Handler]:
    """The table main dispatches on: command name → handler (lab.cli.parser.command_name)."""
    from lab.cli import clinic_args, looking, partition_args, runs

    return {
        "up": up, "provision": provision, "attack": attack, "status": looking.status_or_watch, "down": down,
        "kill": kill, "start": start, "resume": resume, "cut": cut, "heal": heal, "slow": slow, "flap": flap,
        "partition": partition_args.partition,
        "inspect devices": looking.inspect_devices_or_watch, "inspect device": looking.inspect_device,
        "inspect broker": looking.inspect_broker, "inspect ingest": looking.inspect_ingest,
        "inspect reading": looking.inspect_reading, "inspect alerts": looking.inspect_alerts,
        "report": looking.report, "profiles": looking.profiles, "logs": looking.logs, "tail": looking.tail,
        "demo": runs.demo, "scenario list": runs.scenario_list, "scenario run": runs.scenario_run,
        "ingest run": runs.ingest_run, "export": clinic_args.export, "serve": clinic_args.serve,
    }
