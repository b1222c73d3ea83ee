"""The `ecgpipe` argument parser: one function per command group, and the unit converters.

Help texts, argument names, defaults and choices are the interface users' scripts depend on;
they change only on purpose. Every option's help says its unit and, through HelpFormatter,
its default; every command's help ends with an example. `command_name` turns parsed
arguments into the key of `lab.cli.commands.handlers()` ("up", "inspect devices", ...).
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn, Protocol

from ecgcore.modes import DELIVERY_MODES, LINKS, OUTBOX_POLICIES, Delivery, OutboxPolicy
from lab.cli.choices import Components, LogChoices
from lab.cli.clinic_args import add_export, add_serve
from lab.cli.partition_args import NATS_NODES, add_partition
from lab.cli.security_args import add_attack, add_provision
from lab.errors import LabError
from lab.stack.statedir import COMPONENTS
from lab.units import parse_duration, parse_rate

COMPONENT_CHOICES = Components()
STATE_DIR_HELP = "the stack's state dir (default ./.ecgpipe, or $ECGPIPE_STATE_DIR)"
# commands with subcommands: the attribute that holds the subcommand's name
SUBCOMMAND_DEST = {"inspect": "what", "scenario": "scenario_cmd", "ingest": "ingest_cmd"}


def ecgpipe_version() -> str:
    try:
        return version("ecgpipe")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples keep their line breaks; an option's default is shown unless it is None or a
    flag's False, or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default == argparse.SUPPRESS or "default" in text
                or not action.option_strings or action.help == argparse.SUPPRESS):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else "%(default)s"
        return f"{text} (default {shown})"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one clear line and exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


class Subparsers(Protocol):
    """What `add_subparsers` returns, as far as this module uses it (argparse's class is private)."""

    def add_parser(self, name: str, *args: Any, **kwargs: Any) -> OneLineParser: ...


def command(sub: Subparsers, name: str, text: str, example: str,
            parents: tuple[OneLineParser, ...] = ()) -> OneLineParser:
    """A command with its one-line help, and its example(s) under its --help."""
    examples = example.split("\n")
    head = "examples" if len(examples) > 1 else "example"
    lines = "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(name, parents=list(parents), help=text, description=textwrap.fill(text, 78),
                          epilog=f"{head}:\n{lines}")


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


def positive(kind: type[int] | type[float], what: str = "a number") -> Callable[[str], Any]:
    """An argparse type: a number more than 0 (one clear line otherwise)."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value
    return convert


def build_parser() -> OneLineParser:
    # --state-dir after the command, too; the command's value wins over the top-level one
    common = OneLineParser(add_help=False)
    common.add_argument("--state-dir", dest="state_dir_sub", default=argparse.SUPPRESS,
                        metavar="DIR", help=STATE_DIR_HELP)
    p = OneLineParser(prog="ecgpipe", description="ecgpipe: an outage lab for ECG telemetry.",
                      epilog="exit status: 0 done; 1 the operation failed (or a scenario's check "
                             "failed); 2 bad usage;\n3 a scenario run the machine could not follow "
                             "(UNFAITHFUL); 130 interrupted.")
    p.add_argument("--state-dir", default=None, metavar="DIR", help=STATE_DIR_HELP)
    p.add_argument("--version", action="version", version=f"ecgpipe {ecgpipe_version()}")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser, metavar="COMMAND")
    _add_up(sub, common)
    add_provision(sub, common)
    _add_process_commands(sub, common)
    _add_fault_commands(sub, common)
    add_attack(sub, common)
    _add_inspect(sub, common)
    _add_observe(sub, common)
    _add_profiles(sub)
    _add_scenario(sub)
    _add_report_and_demo(sub, common)
    _add_ingest(sub)
    add_export(sub, common)
    add_serve(sub, common)
    return p


def _add_up(sub: Subparsers, common: OneLineParser) -> None:
    up = command(sub, "up", "start broker, ingest and a device fleet in the background",
                 "ecgpipe up --devices 20 --delivery broker-ack --max-queued 100", (common,))
    up.add_argument("--devices", type=int, default=10, metavar="N", help="number of simulated devices")
    up.add_argument("--delivery", choices=DELIVERY_MODES, default=Delivery.END_TO_END.value,
                    help="fire-and-forget: QoS 0; broker-ack: QoS 1, delete on PUBACK; end-to-end: "
                         "keep each reading until ingest confirms it is stored")
    up.add_argument("--max-queued", type=int, default=1000, metavar="N",
                    help="Mosquitto max_queued_messages: messages the broker holds per session")
    up.add_argument("--outbox-capacity", type=int, default=5000, metavar="N",
                    help="readings each device's outbox holds")
    up.add_argument("--outbox-policy", choices=OUTBOX_POLICIES, default=OutboxPolicy.DROP_OLDEST.value,
                    help="what a full outbox does with a new reading")
    up.add_argument("--sample-rate", type=int, default=250, metavar="HZ", help="ECG samples per second, Hz")
    up.add_argument("--chunk-seconds", type=float, default=1.0, metavar="SECONDS",
                    help="seconds of ECG per reading")
    up.add_argument("--ack-timeout", type=float, default=10.0, metavar="SECONDS",
                    help="end-to-end: seconds without a confirmation before a reading may be re-sent")
    up.add_argument("--seed", type=int, default=0, metavar="N",
                    help="random seed of the fleet's ECG, profiles and jitter")
    up.add_argument("--profiles", default=None, metavar="MIX",
                    help="the patients: a mix of catalogue entries (`ecgpipe profiles`), e.g. "
                         "sinus:70%%,af:10%%,brady:10%%,pvc:10%% (default: all sinus)")
    up.add_argument("--profile-file", default=None, metavar="TOML",
                    help="your own catalogue entries, added to the shipped ones (devices/profiles.toml)")
    up.add_argument("--episode", dest="episodes", action="append", default=None, metavar="SPEC",
                    help="schedule an episode: KIND@START+DURATION[:devices=I-J], e.g. "
                         "af-episode@2026-12-01T10:00:00Z+20m:devices=0-4; repeatable")
    up.add_argument("--no-persistence", action="store_true", help="run Mosquitto with persistence off")
    up.add_argument("--no-proxy", action="store_true",
                    help="connect ingest and devices to the broker directly (no cut/heal/slow/flap)")
    up.add_argument("--insecure", action="store_true",
                    help="the lab's comparison: anonymous plaintext MQTT, no ACL, readings and acks "
                         "unsigned (any process may then publish as any device, read every ECG, "
                         "or forge a confirmation that deletes readings a device still holds)")
    up.add_argument("--rate-limit", type=float, default=20.0, metavar="N",
                    help="ingest's per-device limit: messages per simulated second once a burst of "
                         "an outbox's capacity is spent; the rest are refused and counted (0: none)")
    up.add_argument("--broker", choices=("mosquitto", "nats-cluster"), default="mosquitto",
                    help="Mosquitto, or a 3-node NATS JetStream cluster with its MQTT listener (components"
                         " nats-1..3; logins and TLS as Mosquitto's; docs/nats.md, docs/scale.md)")
    up.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                    help="where ingest stores readings: DIR/ingest/ingest.sqlite, or a PostgreSQL the"
                         " stack runs (component `postgres`; `down` copies it into ingest.sqlite)")
    up.add_argument("--ingest-workers", type=int, default=1, metavar="N",
                    help="ingest processes sharing the readings through an MQTT shared subscription"
                         " ($share/ecgpipe-ingest/...): ingest-1 .. ingest-N, each with its own session;"
                         " `ecgpipe kill ingest-2` kills one, `kill ingest` all (docs/scale.md)")
    up.add_argument("--fleet-procs", type=int, default=1, metavar="N",
                    help="run the devices in N processes (1..16) under one supervisor, 10,000 devices"
                         " each at most; one status, inspect and ledger (docs/scale.md)")
    up.add_argument("--no-tls", action="store_true",
                    help="keep logins, the ACL and signatures but speak plaintext MQTT (to look at "
                         "the traffic); default: mutual TLS with the development CA")
    up.add_argument("--replace", action="store_true",
                    help="discard a finished run's files in the state dir (its ledger) and start afresh")
    up.add_argument("--json", action="store_true", help="print the stack's status as JSON when it is up")


def _add_process_commands(sub: Subparsers, common: OneLineParser) -> None:
    """status, down, and what acts on one component: kill, start, resume."""
    st = command(sub, "status", "each component's pid and state; each link's fault; devices online",
                 "ecgpipe status\necgpipe status --watch --interval 2", (common,))
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_watch(st)
    command(sub, "down", "stop everything; keep the state dir (report and inspect still work)",
            "ecgpipe down", (common,))

    k = command(sub, "kill", "kill or freeze a component",
                "ecgpipe kill ingest\necgpipe kill broker --signal STOP   (freeze; `ecgpipe resume broker`)",
                (common,))
    k.add_argument("component", choices=COMPONENT_CHOICES, help="the component: %(choices)s")
    k.add_argument("--signal", default="KILL", type=str.upper, choices=("KILL", "TERM", "STOP"),
                   help="KILL: crash; TERM: clean stop; STOP: freeze (the process hangs, its "
                        "connections stay open)")
    for name, text, example in (
            ("start", "start a component again", "ecgpipe start ingest"),
            ("resume", "resume a component after STOP", "ecgpipe resume ingest")):
        c = command(sub, name, text, example, (common,))
        c.add_argument("component", choices=COMPONENT_CHOICES, help="the component: %(choices)s")


def _add_fault_commands(sub: Subparsers, common: OneLineParser) -> None:
    duration = unit(parse_duration)
    any_duration = unit(_any_duration)
    rate = unit(parse_rate)
    links: dict[str, Any] = {"choices": LINKS, "help": "the link: ingest ↔ broker, or devices ↔ broker"}
    until = "simulated duration after which the fault ends by itself (200ms, 5s, 2m, 72h)"

    c = command(sub, "cut", "cut a link: reset its connections, refuse new ones",
                "ecgpipe cut devices --for 30s\necgpipe cut ingest --blackhole", (common,))
    c.add_argument("link", **links)
    c.add_argument("--blackhole", action="store_true",
                   help="keep connections open but drop every byte both ways (only keepalives notice)")
    c.add_argument("--for", dest="for_s", type=duration, metavar="DURATION", help=until)

    h = command(sub, "heal", "end a link's fault, or a NATS node's partition: clean forwarding again",
                "ecgpipe heal devices\necgpipe heal nats-2", (common,))
    h.add_argument("link", choices=(*LINKS, *NATS_NODES), help="the link, or a NATS node (its partition)")
    add_partition(sub, common)

    s = command(sub, "slow", "add latency (± jitter) and/or a bandwidth cap to a link",
                "ecgpipe slow devices --latency 300ms --jitter 100ms --bandwidth 64kbps --for 2m",
                (common,))
    s.add_argument("link", **links)
    s.add_argument("--latency", type=any_duration, default=0.0, metavar="DURATION",
                   help="added to each chunk, each way (200ms)")
    s.add_argument("--jitter", type=any_duration, default=0.0, metavar="DURATION",
                   help="latency varies by ± this (50ms)")
    s.add_argument("--bandwidth", type=rate, default=None, metavar="RATE",
                   help="per direction and connection: 64kbps, 1mbps, 32KB/s (default: no cap)")
    s.add_argument("--for", dest="for_s", type=duration, metavar="DURATION", help=until)

    f = command(sub, "flap", "cut a link on and off: down, up, down, ...",
                "ecgpipe flap devices --up 5s --down 5s --for 2m", (common,))
    f.add_argument("link", **links)
    f.add_argument("--up", type=duration, required=True, metavar="DURATION",
                   help="how long the link works each time (5s)")
    f.add_argument("--down", type=duration, required=True, metavar="DURATION",
                   help="how long it is cut each time (5s)")
    f.add_argument("--for", dest="for_s", type=duration, metavar="DURATION", help=until)


def _add_watch(p: OneLineParser) -> None:
    p.add_argument("--watch", action="store_true", help="refresh the view until Ctrl-C")
    p.add_argument("--interval", type=positive(float), default=1.0, metavar="SECONDS",
                   help="with --watch: seconds between refreshes")
    p.add_argument("--count", type=positive(int, "a whole number"), default=None, metavar="N",
                   help="with --watch: stop after N refreshes (default: until Ctrl-C)")


def _add_inspect(sub: Subparsers, common: OneLineParser) -> None:
    ins = command(sub, "inspect", "what is buffered where: devices, one device, one reading, the "
                  "broker, ingest; and the clinical alerts",
                  "ecgpipe inspect devices --watch\necgpipe inspect reading hc-0003 42 --png hc-0003-42.png",
                  (common,))
    isub = ins.add_subparsers(dest="what", required=True, parser_class=OneLineParser, metavar="WHAT")
    for name, text, example in (
            ("devices", "one row per device: buffered and evicted readings", "ecgpipe inspect devices"),
            ("broker", "the broker's $SYS counters", "ecgpipe inspect broker"),
            ("ingest", "per device: stored, missing seq ranges, duplicates, quarantine",
             "ecgpipe inspect ingest --json")):
        x = command(isub, name, text, example, (common,))
        x.add_argument("--json", action="store_true", help="print JSON")
        if name == "devices":
            _add_watch(x)
    al = command(isub, "alerts", "clinical events the analysis stage raised: bradycardia, "
                 "tachycardia, pause, suspected AF, unreadable signal; when the heart did it and "
                 "when the system knew", "ecgpipe inspect alerts\necgpipe inspect alerts --device "
                 "hc-0003 --json", (common,))
    al.add_argument("--device", default=None, metavar="DEVICE", help="only this device's events")
    al.add_argument("--json", action="store_true", help="print JSON")
    one = command(isub, "device", "one device: the patient's profile and its buffered readings",
                  "ecgpipe inspect device hc-0003", (common,))
    one.add_argument("device_id", metavar="DEVICE", help="a device id, e.g. hc-0003")
    one.add_argument("--json", action="store_true", help="print JSON")
    r = command(isub, "reading", "one reading: where it is now (outbox, stored, or neither), its "
                "times, and its ECG", "ecgpipe inspect reading hc-0003 42\n"
                "ecgpipe inspect reading hc-0003 42 --png strip.png --csv strip.csv", (common,))
    r.add_argument("device_id", metavar="DEVICE", help="a device id, e.g. hc-0003")
    r.add_argument("seq", type=int, metavar="SEQ", help="the reading's sequence number (0, 1, ...)")
    r.add_argument("--png", default=None, metavar="FILE",
                   help="draw its ECG on ECG paper (25 mm/s, 10 mm/mV) into FILE")
    r.add_argument("--csv", default=None, metavar="FILE", help="write its samples (s, mV) to FILE")
    r.add_argument("--json", action="store_true", help="print JSON")


def _add_observe(sub: Subparsers, common: OneLineParser) -> None:
    """logs and tail: what the stack says and what crosses the broker, as it happens."""
    lg = command(sub, "logs", "the components' logs in one stream, one timestamp style",
                 "ecgpipe logs\necgpipe logs ingest -f\necgpipe logs -n 50", (common,))
    lg.add_argument("component", nargs="?", choices=LogChoices(), default=None,
                    metavar="COMPONENT", help=f"only this component's log: {', '.join(COMPONENTS)}, or "
                    "fleet (= devices), proxy (both proxies) (default: all of them, merged by time)")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    lg.add_argument("-n", "--lines", type=positive(int, "a whole number"), default=None, metavar="N",
                    help="only the last N lines (default: all)")
    tl = command(sub, "tail", "readings as they arrive at the broker, decoded (device, seq, capture "
                 "time, heart rate)", "ecgpipe tail\necgpipe tail --device hc-0003 --count 10",
                 (common,))
    tl.add_argument("--device", default=None, metavar="DEVICE", help="only this device's readings")
    tl.add_argument("--count", type=positive(int, "a whole number"), default=None, metavar="N",
                    help="stop after N readings (default: until Ctrl-C)")
    tl.add_argument("--for", dest="for_s", type=unit(parse_duration), default=None, metavar="DURATION",
                    help="stop after this long, real time (5s, 2m)")
    tl.add_argument("--all", action="store_true",
                    help="also ingest's confirmations, the devices' and ingest's status messages")
    tl.add_argument("--json", action="store_true", help="one JSON object per reading (JSON Lines)")


def _add_profiles(sub: Subparsers) -> None:
    pr = command(sub, "profiles", "the patient catalogue: rhythms, artifacts and episodes that "
                 "--profiles, --episode and scenario files name", "ecgpipe profiles\n"
                 "ecgpipe profiles --file my-patients.toml --json")
    pr.add_argument("--file", default=None, metavar="TOML",
                    help="also your own catalogue entries (as up's --profile-file)")
    pr.add_argument("--json", action="store_true", help="print JSON")


def _add_scenario(sub: Subparsers) -> None:
    sc = command(sub, "scenario", "scripted outage scenarios (scenarios/*.toml)",
                 "ecgpipe scenario list\necgpipe scenario run cardiocomm-72h --variant end-to-end")
    scsub = sc.add_subparsers(dest="scenario_cmd", required=True, parser_class=OneLineParser,
                              metavar="ACTION")
    command(scsub, "list", "the shipped scenarios, one line each", "ecgpipe scenario list")
    srun = command(scsub, "run", "run a scenario against the real stack and check it",
                   "ecgpipe scenario run cardiocomm-72h\n"
                   "ecgpipe scenario run my-outage.toml --speed 60 --out runs/my-outage")
    srun.add_argument("file", metavar="SCENARIO",
                      help="a scenario file, or the name of a shipped one (e.g. cardiocomm-72h)")
    srun.add_argument("--speed", default="auto",
                      help="simulated seconds per real second (default auto: about 200 s of timeline "
                           "for all variants together, within what the stack sustains)")
    srun.add_argument("--out", default=None, metavar="DIR",
                      help="report directory, one subdirectory per variant with report.json, "
                           "ledger.jsonl and the figures (default ./ecgpipe-runs/<scenario>)")
    srun.add_argument("--variant", action="append", default=None, metavar="NAME",
                      help="run only this variant (e.g. end-to-end); repeatable (default: all)")
    srun.add_argument("--devices", type=int, default=None, metavar="N",
                      help="run with this many devices instead of the scenario's (a compressed form)")
    srun.add_argument("--chunk-seconds", type=float, default=None, metavar="SECONDS",
                      help="continuous mode: seconds of ECG per reading instead of the scenario's")
    srun.add_argument("--json", action="store_true", help="print the reports as JSON")


def _add_report_and_demo(sub: Subparsers, common: OneLineParser) -> None:
    rep = command(sub, "report", "the ledger per device and in total",
                  "ecgpipe report\necgpipe report --json > ledger.json", (common,))
    rep.add_argument("--json", action="store_true", help="print JSON")
    rep.add_argument("--all", action="store_true", help="list every device in the text table")

    demo = command(sub, "demo", "the delivery modes, one after the other, through one ingest outage",
                   "ecgpipe demo\necgpipe demo --modes broker-ack,end-to-end --outage 30", (common,))
    demo.add_argument("--devices", type=int, default=20, metavar="N", help="devices in each mode's fleet")
    demo.add_argument("--outage", type=float, default=15.0, metavar="SECONDS",
                      help="seconds the ingest service stays dead")
    demo.add_argument("--max-queued", type=int, default=100, metavar="N",
                      help="Mosquitto max_queued_messages")
    demo.add_argument("--modes", default=",".join(DELIVERY_MODES), metavar="MODES",
                      help="comma-separated delivery modes")
    demo.add_argument("--json", action="store_true", help="print the modes' ledgers as JSON at the end")


def _add_ingest(sub: Subparsers) -> None:
    from ingest.__main__ import add_nats_options, add_service_options

    ing = command(sub, "ingest", "the ingest service", "ecgpipe ingest run --state-dir .ecgpipe")
    isub = ing.add_subparsers(dest="ingest_cmd", required=True, parser_class=OneLineParser,
                              metavar="ACTION")
    run = command(isub, "run", "run the ingest service in the foreground (same as python -m ingest), "
                  "by default against the stack's broker", "ecgpipe kill ingest   "
                  "# stop the background one first\necgpipe ingest run --state-dir .ecgpipe")
    add_service_options(run, from_stack=True)
    add_nats_options(run)  # default: the stack's cluster, when it runs on one
