"""The `ecgpipe` argument parser: one function per command group, and the unit converters.

Help texts, argument names, defaults and choices are the interface users' scripts depend on;
they change only on purpose. `command_name` turns parsed arguments into the key of
`lab.cli.commands.HANDLERS` ("up", "inspect devices", "scenario run", ...).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from ecgcore.modes import DELIVERY_MODES, LINKS, OUTBOX_POLICIES, Delivery, OutboxPolicy
from lab.errors import LabError
from lab.units import parse_duration, parse_rate

COMPONENT_CHOICES = ("ingest", "broker", "devices")
STATE_DIR_HELP = "state dir (default ./.ecgpipe, or $ECGPIPE_STATE_DIR)"
# commands with subcommands: the attribute that holds the subcommand's name
SUBCOMMAND_DEST = {"inspect": "what", "scenario": "scenario_cmd", "ingest": "ingest_cmd"}

class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one clear line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


class Subparsers(Protocol):
    """What `add_subparsers` returns, as far as this module uses it (argparse's class is private)."""

    def add_parser(self, name: str, *args: Any, **kwargs: Any) -> OneLineParser: ...


def command_name(args: argparse.Namespace) -> str:
    """The command the arguments name: "up", or with its subcommand, "inspect devices"."""
    cmd: str = args.cmd
    dest = SUBCOMMAND_DEST.get(cmd)
    return f"{cmd} {getattr(args, dest)}" if dest else cmd


def unit(parse: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type from a lab.units parser: a bad value becomes one clear usage line."""
    def convert(text: str) -> float:
        try:
            return parse(text)
        except LabError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return convert


def _any_duration(text: str) -> float:
    return parse_duration(text, allow_zero=True)


def build_parser() -> OneLineParser:
    # --state-dir after the command, too; the command's value wins over the top-level one
    common = OneLineParser(add_help=False)
    common.add_argument("--state-dir", dest="state_dir_sub", default=argparse.SUPPRESS, help=STATE_DIR_HELP)
    p = OneLineParser(prog="ecgpipe", description="ecgpipe: an outage lab for ECG telemetry.")
    p.add_argument("--state-dir", default=None, help=STATE_DIR_HELP)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)
    _add_up(sub, common)
    _add_process_commands(sub, common)
    _add_fault_commands(sub, common)
    _add_inspect(sub, common)
    _add_scenario(sub)
    _add_report_and_demo(sub, common)
    _add_ingest(sub)
    return p


def _add_up(sub: Subparsers, common: OneLineParser) -> None:
    up = sub.add_parser("up", parents=[common],
                        help="start broker, ingest and a device fleet in the background")
    up.add_argument("--devices", type=int, default=10, help="number of simulated devices (default 10)")
    up.add_argument("--delivery", choices=DELIVERY_MODES, default=Delivery.END_TO_END.value)
    up.add_argument("--max-queued", type=int, default=1000,
                    help="Mosquitto max_queued_messages (default 1000)")
    up.add_argument("--outbox-capacity", type=int, default=5000, help="readings each device's outbox holds")
    up.add_argument("--outbox-policy", choices=OUTBOX_POLICIES, default=OutboxPolicy.DROP_OLDEST.value)
    up.add_argument("--sample-rate", type=int, default=250)
    up.add_argument("--chunk-seconds", type=float, default=1.0)
    up.add_argument("--ack-timeout", type=float, default=10.0, help="end-to-end resend timeout, seconds")
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--no-persistence", action="store_true", help="run Mosquitto with persistence off")
    up.add_argument("--no-proxy", action="store_true",
                    help="connect ingest and devices to the broker directly (no cut/heal/slow/flap)")
    up.add_argument("--json", action="store_true")


def _add_process_commands(sub: Subparsers, common: OneLineParser) -> None:
    """status, down, and what acts on one component: kill, start, resume."""
    st = sub.add_parser("status", parents=[common], help="each component's pid and state; devices online")
    st.add_argument("--json", action="store_true")
    sub.add_parser("down", parents=[common], help="stop everything; keep the state dir")

    k = sub.add_parser("kill", parents=[common], help="kill or freeze a component")
    k.add_argument("component", choices=COMPONENT_CHOICES)
    k.add_argument("--signal", default="KILL", type=str.upper, choices=("KILL", "TERM", "STOP"))
    for name, text in (("start", "start a component again"), ("resume", "resume a component after STOP")):
        c = sub.add_parser(name, parents=[common], help=text)
        c.add_argument("component", choices=COMPONENT_CHOICES)


def _add_fault_commands(sub: Subparsers, common: OneLineParser) -> None:
    duration = unit(parse_duration)
    any_duration = unit(_any_duration)
    rate = unit(parse_rate)
    links: dict[str, Any] = {"choices": LINKS, "help": "the link: ingest ↔ broker, or devices ↔ broker"}
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


def _add_inspect(sub: Subparsers, common: OneLineParser) -> None:
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


def _add_scenario(sub: Subparsers) -> None:
    sc = sub.add_parser("scenario", help="scripted outage scenarios (scenarios/*.toml)")
    scsub = sc.add_subparsers(dest="scenario_cmd", required=True, parser_class=OneLineParser)
    scsub.add_parser("list", help="the shipped scenarios, one line each")
    srun = scsub.add_parser("run", help="run a scenario against the real stack and check it")
    srun.add_argument("file", help="a scenario file, or the name of a shipped one (e.g. cardiocomm-72h)")
    srun.add_argument("--speed", default="auto",
                      help="simulated seconds per real second (default auto: about 200 s of timeline "
                           "for all variants together, within what the stack sustains)")
    srun.add_argument("--out", default=None,
                      help="report directory, one subdirectory per variant with report.json, "
                           "ledger.jsonl and the figures (default ./ecgpipe-runs/<scenario>)")
    srun.add_argument("--variant", action="append", default=None,
                      help="run only this variant (e.g. end-to-end); repeatable")
    srun.add_argument("--devices", type=int, default=None,
                      help="run with this many devices instead of the scenario's (a compressed form)")
    srun.add_argument("--chunk-seconds", type=float, default=None,
                      help="continuous mode: seconds of ECG per reading instead of the scenario's")
    srun.add_argument("--json", action="store_true", help="print the reports as JSON")


def _add_report_and_demo(sub: Subparsers, common: OneLineParser) -> None:
    rep = sub.add_parser("report", parents=[common], help="the ledger per device and in total")
    rep.add_argument("--json", action="store_true")
    rep.add_argument("--all", action="store_true", help="list every device in the text table")

    demo = sub.add_parser("demo", parents=[common], help="the three delivery modes through one outage")
    demo.add_argument("--devices", type=int, default=20)
    demo.add_argument("--outage", type=float, default=15.0, help="seconds the ingest service stays dead")
    demo.add_argument("--max-queued", type=int, default=100)
    demo.add_argument("--modes", default=",".join(DELIVERY_MODES), help="comma-separated delivery modes")
    demo.add_argument("--json", action="store_true", help="print the three ledgers as JSON at the end")


def _add_ingest(sub: Subparsers) -> None:
    ing = sub.add_parser("ingest", help="the ingest service")
    isub = ing.add_subparsers(dest="ingest_cmd", required=True, parser_class=OneLineParser)
    run = isub.add_parser("run", help="run the ingest service in the foreground (same as python -m ingest)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments of python -m ingest")
