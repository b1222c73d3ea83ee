"""One handler per `ecgpipe` command, each `(args) -> int`, and HANDLERS, the table main dispatches on.

A handler imports what its command needs when it runs, so `ecgpipe status` does not load numpy,
matplotlib or neurokit2. A handler raises LabError for anything the user can fix; main turns
that into one line and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from ecgcore.modes import DELIVERY_MODES, Delivery
from lab.errors import LabError, UsageError
from lab.stack.statedir import StackConfig, StateDir, resolve_state_dir

Handler = Callable[[argparse.Namespace], int]


def say(msg: str) -> None:
    print(msg, flush=True)


def quiet(msg: str) -> None:
    """Progress under --json: nothing, so stdout holds only the JSON document."""


def emit(doc: dict[str, Any], as_json: bool, fmt: Callable[[dict[str, Any]], str]) -> None:
    print(json.dumps(doc, indent=1, sort_keys=True, default=str) if as_json else fmt(doc))


def state_dir(args: argparse.Namespace) -> StateDir:
    """The state dir `--state-dir` names, after the command or before it, else the default."""
    return StateDir(resolve_state_dir(getattr(args, "state_dir_sub", None) or args.state_dir))


# ---- the stack: up, status, down, kill, start, resume


def up(args: argparse.Namespace) -> int:
    from lab.stack import control as stack

    sd = state_dir(args)
    cfg = StackConfig(devices=args.devices, delivery=args.delivery, max_queued=args.max_queued,
                      outbox_capacity=args.outbox_capacity, outbox_policy=args.outbox_policy,
                      sample_rate=args.sample_rate, chunk_seconds=args.chunk_seconds,
                      ack_timeout=args.ack_timeout, seed=args.seed, persistence=not args.no_persistence,
                      proxies=not args.no_proxy)
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


def _refuse_to_overwrite(sd: StateDir, *, replace: bool) -> None:
    """`up` neither starts a second stack on a running one nor silently discards a finished
    run's files (its ledger): it refuses, with what to do instead."""
    from lab.stack.procs import RUNNING, STOPPED
    from lab.stack.statedir import COMPONENTS

    if not sd.root.is_dir():
        return
    live = [n for n in COMPONENTS if sd.component(n).state() in (RUNNING, STOPPED)]
    if live:
        raise LabError(f"a stack is already running in {sd.root} ({', '.join(live)}); run "
                       f"`ecgpipe down --state-dir {sd.root}` first, or use another --state-dir")
    previous = [p for p in (sd.stack_file, sd.outbox_db, sd.ingest_db) if p.exists()]
    if previous and not replace:
        raise LabError(f"{sd.root} holds a finished run ({', '.join(p.name for p in previous)}): "
                       f"read it with `ecgpipe report --state-dir {sd.root}`, then `ecgpipe up "
                       f"--replace` discards it; or pass another --state-dir")


def status_or_watch(args: argparse.Namespace) -> int:
    """`status`, or with --watch the same view refreshed (lab.observe.live)."""
    if not args.watch:
        return status(args)
    from lab.observe.live import is_terminal, watch
    from lab.observe.views import status_table
    from lab.report.status import format_status
    from lab.report.status import status as stack_status

    if args.json:
        raise UsageError("--watch shows the text view; use --json without --watch, in a loop")
    sd = state_dir(args)
    # a terminal gets rich's coloured table redrawn in place; a pipe the plain text, frame by frame
    view = status_table if is_terminal(sys.stdout) else format_status
    return watch(lambda: view(stack_status(sd)), interval_s=args.interval, count=args.count,
                 out=sys.stdout)


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
    pid = stack.kill(sd, args.component, args.signal)
    say(f"sent SIG{args.signal} to {args.component} (pid {pid}); it is now "
        f"{sd.component(args.component).state()}")
    return 0


def start(args: argparse.Namespace) -> int:
    from lab.stack import control as stack

    stack.start(state_dir(args), args.component, progress=say)
    return 0


def resume(args: argparse.Namespace) -> int:
    from lab.stack import control as stack

    sd = state_dir(args)
    pid = stack.resume(sd, args.component)
    say(f"resumed {args.component} (pid {pid}); it is now {sd.component(args.component).state()}")
    return 0


# ---- network faults on a link: cut, heal, slow, flap


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
    return _on_link(args, "heal")


def slow(args: argparse.Namespace) -> int:
    if not (args.latency or args.jitter or args.bandwidth):  # bad usage (2) before no stack (1)
        raise UsageError("slow needs --latency, --jitter or --bandwidth (e.g. --latency 200ms)")
    return _on_link(args, "slow", for_s=args.for_s, latency_s=args.latency, jitter_s=args.jitter,
                    bandwidth_bytes_s=args.bandwidth)


def flap(args: argparse.Namespace) -> int:
    return _on_link(args, "flap", for_s=args.for_s, up_s=args.up, down_s=args.down)


# ---- what is where: inspect, report


def inspect_devices(args: argparse.Namespace) -> int:
    from ecgcore.clock import SystemClock
    from lab.report import inspection

    doc = inspection.inspect_devices(state_dir(args), SystemClock().now())
    emit(doc, args.json, inspection.format_devices)
    return 0


def inspect_devices_or_watch(args: argparse.Namespace) -> int:
    """`inspect devices`, or with --watch the same table refreshed (lab.observe.live)."""
    if not args.watch:
        return inspect_devices(args)
    from ecgcore.clock import SystemClock
    from lab.observe.live import is_terminal, watch
    from lab.observe.views import devices_table
    from lab.report import inspection

    if args.json:
        raise UsageError("--watch shows the text view; use --json without --watch, in a loop")
    sd, clock = state_dir(args), SystemClock()
    view = devices_table if is_terminal(sys.stdout) else inspection.format_devices
    return watch(lambda: view(inspection.inspect_devices(sd, clock.now())),
                 interval_s=args.interval, count=args.count, out=sys.stdout)


def inspect_reading(args: argparse.Namespace) -> int:
    if args.seq < 0:
        raise UsageError(f"SEQ must be 0 or more, got {args.seq}")
    from pathlib import Path

    from ecgcore.clock import SystemClock
    from lab.report.reading import format_reading
    from lab.report.reading import inspect_reading as read_one

    now = SystemClock().now()
    doc = read_one(state_dir(args), args.device_id, args.seq, now=now,
                   png=Path(args.png) if args.png else None, csv=Path(args.csv) if args.csv else None)
    emit(doc, args.json, partial(format_reading, now=now))
    return 0


def inspect_device(args: argparse.Namespace) -> int:
    from ecgcore.clock import SystemClock
    from lab.report import inspection

    now = SystemClock().now()
    emit(inspection.inspect_device(state_dir(args), args.device_id), args.json,
         partial(inspection.format_device, now=now))
    return 0


def inspect_broker(args: argparse.Namespace) -> int:
    from ecgcore.clock import SystemClock
    from lab.report import inspection

    now = SystemClock().now()
    emit(inspection.inspect_broker(state_dir(args)), args.json, partial(inspection.format_broker, now=now))
    return 0


def inspect_ingest(args: argparse.Namespace) -> int:
    from lab.report import inspection

    emit(inspection.inspect_ingest(state_dir(args)), args.json, inspection.format_ingest)
    return 0


def report(args: argparse.Namespace) -> int:
    from lab.report.inspection import require_state_dir
    from lab.report.summary import build_report, format_report

    sd = state_dir(args)
    require_state_dir(sd)
    rep = build_report(sd)
    emit(rep, args.json, partial(format_report, max_devices=10**9 if args.all else 20))
    return 0


# ---- watching: logs, tail


def logs(args: argparse.Namespace) -> int:
    from lab.observe.logs import run_logs

    return run_logs(state_dir(args), args.component, follow=args.follow, lines=args.lines,
                    out=sys.stdout)


def tail(args: argparse.Namespace) -> int:
    from lab.observe.tail import run_tail

    return run_tail(state_dir(args), args.device, count=args.count, as_json=args.json, out=sys.stdout,
                    timeout_s=args.for_s, show_all=args.all)


# ---- whole runs: demo, scenario list, scenario run; the ingest service in the foreground


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
    argv = ["--state-dir", str(sd.root), "--client-id", args.client_id,
            "--keepalive", str(args.keepalive), "--session-expiry", str(args.session_expiry),
            "--reconnect-max", repr(args.reconnect_max)]
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
    else:
        acks = args.acks
    for flag, value in given.items():
        argv += [flag, str(value)]
    return ingest_main([*argv, "--acks" if acks else "--no-acks"], prog="ecgpipe ingest run")


HANDLERS: dict[str, Handler] = {
    "up": up, "status": status_or_watch, "down": down, "kill": kill, "start": start, "resume": resume,
    "cut": cut, "heal": heal, "slow": slow, "flap": flap,
    "inspect devices": inspect_devices_or_watch, "inspect device": inspect_device,
    "inspect reading": inspect_reading, "logs": logs, "tail": tail,
    "inspect broker": inspect_broker, "inspect ingest": inspect_ingest,
    "report": report, "demo": demo,
    "scenario list": scenario_list, "scenario run": scenario_run,
    "ingest run": ingest_run,
}
