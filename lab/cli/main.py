"""The `ecgpipe` command: parse arguments, call one function, print a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from lab.errors import LabError
from lab.nemesis.faults import LINKS
from lab.stack.statedir import DELIVERY_MODES, POLICIES, StackConfig, StateDir, resolve_state_dir
from lab.units import parse_duration, parse_rate

COMPONENT_CHOICES = ("ingest", "broker", "devices")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one clear line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def _say(msg: str) -> None:
    print(msg, flush=True)


def _emit(doc: Any, as_json: bool, fmt) -> None:  # type: ignore[no-untyped-def]
    print(json.dumps(doc, indent=1, sort_keys=True, default=str) if as_json else fmt(doc))


def build_parser() -> OneLineParser:
    common = OneLineParser(add_help=False)
    common.add_argument("--state-dir", dest="state_dir_sub", default=argparse.SUPPRESS,
                        help="state dir (default ./.ecgpipe, or $ECGPIPE_STATE_DIR)")
    p = OneLineParser(prog="ecgpipe", description="ecgpipe: an outage lab for ECG telemetry.")
    p.add_argument("--state-dir", default=None, help="state dir (default ./.ecgpipe, or $ECGPIPE_STATE_DIR)")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)

    up = sub.add_parser("up", parents=[common], help="start broker, ingest and a device fleet in the background")
    up.add_argument("--devices", type=int, default=10, help="number of simulated devices (default 10)")
    up.add_argument("--delivery", choices=DELIVERY_MODES, default="end-to-end")
    up.add_argument("--max-queued", type=int, default=1000, help="Mosquitto max_queued_messages (default 1000)")
    up.add_argument("--outbox-capacity", type=int, default=5000, help="readings each device's outbox holds")
    up.add_argument("--outbox-policy", choices=POLICIES, default="drop-oldest")
    up.add_argument("--sample-rate", type=int, default=250)
    up.add_argument("--chunk-seconds", type=float, default=1.0)
    up.add_argument("--ack-timeout", type=float, default=10.0, help="end-to-end resend timeout, seconds")
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--no-persistence", action="store_true", help="run Mosquitto with persistence off")
    up.add_argument("--no-proxy", action="store_true",
                    help="connect ingest and devices to the broker directly (no cut/heal/slow/flap)")
    up.add_argument("--json", action="store_true")

    st = sub.add_parser("status", parents=[common], help="each component's pid and state; devices online")
    st.add_argument("--json", action="store_true")
    sub.add_parser("down", parents=[common], help="stop everything; keep the state dir")

    k = sub.add_parser("kill", parents=[common], help="kill or freeze a component")
    k.add_argument("component", choices=COMPONENT_CHOICES)
    k.add_argument("--signal", default="KILL", type=str.upper, choices=("KILL", "TERM", "STOP"))
    for name, text in (("start", "start a component again"), ("resume", "resume a component after STOP")):
        c = sub.add_parser(name, parents=[common], help=text)
        c.add_argument("component", choices=COMPONENT_CHOICES)

    _add_fault_commands(sub, common)

    ins = sub.add_parser("inspect", parents=[common], help="what is buffered where")
    isub = ins.add_subparsers(dest="what", required=True, parser_class=OneLineParser)
    for name, text in (("devices", "one row per device: buffered and evicted readings"),
                       ("broker", "the broker's $SYS counters"),
                       ("ingest", "per device: stored, missing seq ranges, duplicates, quarantine")):
        x = isub.add_parser(name, parents=[common], help=text)
        x.add_argument("--json", action="store_true")
    one = isub.add_parser("device", parents=[common], help="one device's buffered readings")
    one.add_argument("device_id")
    one.add_argument("--json", action="store_true")

    sc = sub.add_parser("scenario", help="scripted outage scenarios (scenarios/*.toml)")
    scsub = sc.add_subparsers(dest="scenario_cmd", required=True, parser_class=OneLineParser)
    scsub.add_parser("list", help="the shipped scenarios, one line each")
    srun = scsub.add_parser("run", help="run a scenario against the real stack and check it")
    srun.add_argument("file", help="a scenario file, or the name of a shipped one (e.g. cardiocomm-72h)")
    srun.add_argument("--speed", default="auto",
                      help="simulated seconds per real second (default auto: about 200 s of timeline "
                           "for all variants together, within what the stack sustains)")
    srun.add_argument("--out", default=None, help="report directory, one subdirectory per variant with report.json, "
                           "ledger.jsonl and the figures (default ./ecgpipe-runs/<scenario>)")
    srun.add_argument("--variant", action="append", default=None,
                      help="run only this variant (e.g. end-to-end); repeatable")
    srun.add_argument("--devices", type=int, default=None,
                      help="run with this many devices instead of the scenario's (a compressed form)")
    srun.add_argument("--chunk-seconds", type=float, default=None,
                      help="continuous mode: seconds of ECG per reading instead of the scenario's")
    srun.add_argument("--json", action="store_true", help="print the reports as JSON")

    rep = sub.add_parser("report", parents=[common], help="the ledger per device and in total")
    rep.add_argument("--json", action="store_true")
    rep.add_argument("--all", action="store_true", help="list every device in the text table")

    demo = sub.add_parser("demo", parents=[common], help="the three delivery modes through one outage")
    demo.add_argument("--devices", type=int, default=20)
    demo.add_argument("--outage", type=float, default=15.0, help="seconds the ingest service stays dead")
    demo.add_argument("--max-queued", type=int, default=100)
    demo.add_argument("--modes", default=",".join(DELIVERY_MODES), help="comma-separated delivery modes")
    demo.add_argument("--json", action="store_true", help="print the three ledgers as JSON at the end")

    ing = sub.add_parser("ingest", help="the ingest service")
    isub2 = ing.add_subparsers(dest="ingest_cmd", required=True, parser_class=OneLineParser)
    run = isub2.add_parser("run", help="run the ingest service in the foreground (same as python -m ingest)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments of python -m ingest")
    return p


def _unit(parse: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type from a lab.units parser: a bad value becomes one clear usage line."""
    def convert(text: str) -> float:
        try:
            return parse(text)
        except LabError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return convert


def _add_fault_commands(sub: Any, common: OneLineParser) -> None:
    duration = _unit(parse_duration)
    any_duration = _unit(lambda t: parse_duration(t, allow_zero=True))
    rate = _unit(parse_rate)
    links = {"choices": LINKS, "help": "the link: ingest ↔ broker, or devices ↔ broker"}
    until = "simulated duration after which the fault ends by itself (200ms, 5s, 2m, 72h)"

    c = sub.add_parser("cut", parents=[common],
                       help="cut a link: reset its connections, refuse new ones")
    c.add_argument("link", **links)
    c.add_argument("--blackhole", action="store_true",
                   help="keep connections open but drop every byte both ways (only keepalives notice)")
    c.add_argument("--for", dest="for_s", type=duration, metavar="DURATION", help=until)

    h = sub.add_parser("heal", parents=[common], help="end a link's fault: clean forwarding again")
    h.add_argument("link", **links)

    s = sub.add_parser("slow", parents=[common],
                       help="add latency (± jitter) and/or a bandwidth cap to a link")
    s.add_argument("link", **links)
    s.add_argument("--latency", type=any_duration, default=0.0,
                   help="added to each chunk, each way (200ms)")
    s.add_argument("--jitter", type=any_duration, default=0.0, help="latency varies by ± this (50ms)")
    s.add_argument("--bandwidth", type=rate, default=None,
                   help="per direction and connection: 64kbps, 1mbps, 32KB/s")
    s.add_argument("--for", dest="for_s", type=duration, metavar="DURATION", help=until)

    f = sub.add_parser("flap", parents=[common], help="cut a link on and off: down, up, down, ...")
    f.add_argument("link", **links)
    f.add_argument("--up", type=duration, required=True, help="how long the link works each time (5s)")
    f.add_argument("--down", type=duration, required=True, help="how long it is cut each time (5s)")
    f.add_argument("--for", dest="for_s", type=duration, metavar="DURATION", help=until)


def _fault(sd: StateDir, args: argparse.Namespace) -> str:
    from ecgcore.clock import make_clock
    from lab.nemesis.proxyctl import command

    clock = make_clock(sd.config().speed)
    if args.cmd == "heal":
        return command(sd, args.link, "heal", clock)
    if args.cmd == "cut":
        kind = "blackhole" if args.blackhole else "cut"
        return command(sd, args.link, kind, clock, for_s=args.for_s)
    if args.cmd == "slow":
        if not (args.latency or args.jitter or args.bandwidth):
            raise LabError("slow needs --latency, --jitter or --bandwidth (e.g. --latency 200ms)")
        return command(sd, args.link, "slow", clock, for_s=args.for_s, latency_s=args.latency,
                       jitter_s=args.jitter, bandwidth_bytes_s=args.bandwidth)
    return command(sd, args.link, "flap", clock, for_s=args.for_s, up_s=args.up, down_s=args.down)


def _state_dir(args: argparse.Namespace) -> StateDir:
    return StateDir(resolve_state_dir(getattr(args, "state_dir_sub", None) or args.state_dir))


def run(args: argparse.Namespace) -> int:
    from lab.stack import control as stack

    cmd = args.cmd
    if cmd == "ingest":
        return _ingest_run(args)
    if cmd == "scenario":
        return _scenario(args)
    sd = _state_dir(args)
    if cmd == "up":
        cfg = StackConfig(devices=args.devices, delivery=args.delivery, max_queued=args.max_queued,
                          outbox_capacity=args.outbox_capacity, outbox_policy=args.outbox_policy,
                          sample_rate=args.sample_rate, chunk_seconds=args.chunk_seconds,
                          ack_timeout=args.ack_timeout, seed=args.seed, persistence=not args.no_persistence,
                          proxies=not args.no_proxy)
        say = (lambda m: None) if args.json else _say
        say(f"starting {cfg.devices} devices ({cfg.delivery}) in {sd.root} ...")
        cfg = stack.up(sd, cfg, progress=say)
        if args.json:
            from lab.report.status import status
            print(json.dumps(status(sd), indent=1, sort_keys=True))
        else:
            _say(f"up: broker on {cfg.host}:{cfg.port} (ingest via :{cfg.proxy_ingest_port}, "
                 f"devices via :{cfg.proxy_devices_port}). Next: ecgpipe status | ecgpipe kill ingest | "
                 f"ecgpipe cut devices --for 30s | ecgpipe inspect devices | ecgpipe report | "
                 f"ecgpipe down")
        return 0
    if cmd == "status":
        from lab.report.status import format_status, status
        _emit(status(sd), args.json, format_status)
        return 0
    if cmd == "down":
        sd.config()
        stopped = stack.down(sd, progress=_say)
        _say(f"down: stopped {', '.join(stopped) if stopped else 'nothing (all were dead)'}; "
             f"files kept in {sd.root}")
        return 0
    if cmd == "kill":
        pid = stack.kill(sd, args.component, args.signal)
        _say(f"sent SIG{args.signal} to {args.component} (pid {pid}); it is now "
             f"{sd.component(args.component).state()}")
        return 0
    if cmd == "start":
        stack.start(sd, args.component, progress=_say)
        return 0
    if cmd == "resume":
        pid = stack.resume(sd, args.component)
        _say(f"resumed {args.component} (pid {pid}); it is now {sd.component(args.component).state()}")
        return 0
    if cmd in ("cut", "heal", "slow", "flap"):
        _say(_fault(sd, args))
        return 0
    if cmd == "inspect":
        from ecgcore.clock import SystemClock
        from lab.report import inspection as ins

        if args.what == "devices":
            _emit(ins.inspect_devices(sd, SystemClock().now()), args.json, ins.format_devices)
        elif args.what == "device":
            _emit(ins.inspect_device(sd, args.device_id), args.json, ins.format_device)
        elif args.what == "broker":
            _emit(ins.inspect_broker(sd), args.json, ins.format_broker)
        else:
            _emit(ins.inspect_ingest(sd), args.json, ins.format_ingest)
        return 0
    if cmd == "report":
        from lab.report.inspection import require_state_dir
        from lab.report.summary import build_report, format_report

        require_state_dir(sd)
        rep = build_report(sd)
        _emit(rep, args.json, lambda r: format_report(r, max_devices=10**9 if args.all else 20))
        return 0
    if cmd == "demo":
        from lab.demo import run_demo
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        bad = [m for m in modes if m not in DELIVERY_MODES]
        if bad or not modes:
            raise LabError(f"--modes takes a comma-separated list of {', '.join(DELIVERY_MODES)}, not {args.modes!r}")
        if args.devices < 1 or args.outage <= 0 or args.max_queued < 1:
            raise LabError("--devices, --outage and --max-queued must be positive")
        return run_demo(sd.root, devices=args.devices, outage_s=args.outage, max_queued=args.max_queued,
                        modes=modes, as_json=args.json)
    raise LabError(f"unknown command {cmd}")


def _scenario(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lab.scenario import list_scenarios, load_scenario
    from lab.scenario.files import SCENARIO_DIR, auto_speed, resolve_scenario

    if args.scenario_cmd == "list":
        for name, description in list_scenarios(SCENARIO_DIR):
            print(f"{name:<32} {description}")
        return 0
    from lab.scenario.runner import run_variant, summary

    scn = load_scenario(resolve_scenario(args.file))
    if args.speed == "auto":
        speed = auto_speed(scn)
    else:
        try:
            speed = float(args.speed)
        except ValueError:
            raise LabError(f"--speed must be a number or auto, not {args.speed!r}") from None
        if not speed > 0:
            raise LabError(f"--speed must be more than 0, got {speed:g}")
    from lab.scenario.runner import with_chunk, with_devices

    variants = [with_chunk(with_devices(scn.variant(v), args.devices), args.chunk_seconds)
                for v in (args.variant or [v.name for v in scn.variants])]
    out = Path(args.out or Path("ecgpipe-runs") / scn.name).resolve()
    say = (lambda m: None) if args.json else _say
    runs = [run_variant(scn, v, speed, out, say) for v in variants]
    if args.json:
        print(json.dumps({r.variant: r.report for r in runs}, indent=1, sort_keys=True, default=str))
    else:
        _say(f"\n=== {scn.name}: {scn.description}")
        _say(summary(runs))
        _say(f"figures: timeline.png, gaps.png, strip.png under {out}/<variant>/")
    return 0 if all(r.ok for r in runs) else 1


def _ingest_run(args: argparse.Namespace) -> int:
    from ingest.__main__ import main as ingest_main

    argv = list(args.args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if "--port" not in argv and "-h" not in argv and "--help" not in argv:
        from lab.stack.control import proxy_port
        from lab.stack.procs import RUNNING

        sd = StateDir(resolve_state_dir(args.state_dir))
        cfg = sd.config()  # a clear error if there is no stack to take the broker from
        # through the ingest link's proxy while it runs, so `ecgpipe cut ingest` applies
        proxied = sd.component("proxy-ingest").state() == RUNNING
        port = proxy_port(cfg, "ingest") if proxied else cfg.port
        argv = ["--state-dir", str(sd.root), "--host", cfg.host, "--port", str(port),
                "--acks" if cfg.delivery == "end-to-end" else "--no-acks", *argv]
    return ingest_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except LabError as exc:
        sys.stderr.write(f"ecgpipe: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("ecgpipe: interrupted\n")
        return 130

