"""`python -m devices`: run a fleet of simulated ECG monitors (docs/architecture.md).

    python -m devices --state-dir DIR --host HOST --port PORT --devices N --delivery MODE
                      [--outbox-capacity 5000] [--outbox-policy drop-oldest|reject-new]
                      [--chunk-seconds 1.0] [--sample-rate 250] [--seed 0] [--speed 1.0]
                      [--id-prefix hc] [--ack-timeout 10] [--resend-cap 300] [--window 50]
                      [--ecg-source ecgsyn|synthetic] [--history | --no-history]
                      [--recording continuous|strip] [--strip-seconds 30]
                      [--strips-per-day 3] [--strip-chunks 1] [--keepalive 10]
                      [--reconnect-backoff jitter|none] [--backoff-cap 30] [--backlog-pace N]
                      [--cohort NAME:COUNT[:hr=LO-HI][:strips=N] ...] [--record-until T]
                      [--profiles MIX] [--profile-file TOML] [--episode SPEC ...]
                      [--procs N] [--metrics-port N [--metrics-host 127.0.0.1]]

--metrics-port N: serve Prometheus metrics (devices/metrics.py, docs/metrics.md) on
http://HOST:N/metrics (0: a free port) and say where in DIR/fleet/metrics.json; with --procs N
each slice K serves its own, on port N + K - 1 (free ports for 0), and writes fleet/metrics-K.json.
A port that cannot be served: one line on stderr, exit 1, at start.
--procs N (N > 1): a supervisor (devices/supervisor.py) that runs the fleet in N processes,
each `--slice K/N` of the devices. Bad arguments: one error line on stderr, exit 2. SIGTERM or SIGINT: a
graceful stop, exit 0. A device-side failure: one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from devices.errors import ConfigError, DeviceError, ProfileError
from devices.fleet import SOURCES, Fleet, FleetConfig
from devices.metrics import FleetMetrics
from devices.profile import Cohort
from devices.supervisor import MAX_PROCS, die_with_parent, run_supervisor
from ecgcore.metrics_http import MetricsServer, MetricsServerError
from ecgcore.modes import BACKOFFS, DELIVERY_MODES, OUTBOX_POLICIES, RECORDINGS, OutboxPolicy, Recording
from ecgcore.strict_warnings import apply_from_env


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line on stderr (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m devices",
        description="Run a fleet of simulated HeartCheck ECG monitors publishing over MQTT.",
    )
    p.add_argument("--state-dir", required=True, type=Path, help="state dir; uses DIR/fleet/")
    p.add_argument("--host", required=True, help="MQTT broker host")
    p.add_argument("--port", required=True, type=int, help="MQTT broker port")
    p.add_argument("--devices", required=True, type=int, help="number of devices")
    p.add_argument("--delivery", required=True, choices=DELIVERY_MODES,
                   help="when the outbox lets go of a reading")
    p.add_argument("--outbox-capacity", type=int, default=5000, help="rows per device")
    p.add_argument("--outbox-policy", choices=OUTBOX_POLICIES, default=OutboxPolicy.DROP_OLDEST.value,
                   help="what a full outbox does")
    p.add_argument("--chunk-seconds", type=float, default=1.0, help="seconds of ECG per reading")
    p.add_argument("--sample-rate", type=int, default=250, help="samples per second")
    p.add_argument("--seed", type=int, default=0, help="seed of profiles, signals and jitter")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--id-prefix", default="hc", help="device ids are PREFIX-0000, PREFIX-0001...")
    p.add_argument("--ack-timeout", type=float, default=10.0,
                   help="end-to-end: real seconds (whatever --speed) without a confirmation "
                        "before the newest reading in flight is sent again as a probe; the wait "
                        "doubles up to --resend-cap")
    p.add_argument("--resend-cap", type=float, default=300.0,
                   help="end-to-end: the probe's longest wait, real seconds")
    p.add_argument("--window", type=int, default=50, help="readings in flight per device")
    p.add_argument("--secrets-dir", type=Path, default=None, metavar="DIR",
                   help="a secure stack's provisioned secrets (`ecgpipe provision`; DIR/secrets):"
                        " each device logs in as itself, signs its readings, and acts only on"
                        " acks and ingest statuses signed for it (default: anonymous, unsigned)")
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True,
                   help="with --secrets-dir: reach the broker over TLS, each device with its own"
                        " certificate")
    p.add_argument("--ecg-source", choices=SOURCES, default="ecgsyn",
                   help="ecgsyn (each device its own signal, from neurokit2 ecgsyn beats built "
                        "once and cached) or synthetic (a periodic bank, for transport-only runs)")
    p.add_argument("--history", action=argparse.BooleanOptionalAction, default=True,
                   help="append device events to DIR/history/devices.jsonl (default: on)")
    p.add_argument("--recording", choices=RECORDINGS, default=Recording.CONTINUOUS.value,
                   help="continuous chunks, or scheduled strips (HeartCheck CardiBeat)")
    p.add_argument("--strip-seconds", type=float, default=30.0,
                   help="strip mode: seconds of ECG per strip")
    p.add_argument("--strips-per-day", type=int, default=3,
                   help="strip mode: strips per simulated day (one per equal slot, jittered)")
    p.add_argument("--strip-chunks", type=int, default=1,
                   help="strip mode: readings per strip (1: the whole strip in one reading)")
    p.add_argument("--keepalive", type=int, default=10,
                   help="MQTT keepalive, real seconds (a dead link is noticed within 1.5x)")
    p.add_argument("--reconnect-backoff", choices=BACKOFFS, default="jitter",
                   help="jitter: exponential backoff with jitter (0.5 s doubling to 30 s); "
                        "none: retry every second, all devices in step")
    p.add_argument("--backoff-cap", type=float, default=30.0, metavar="SECONDS",
                   help="jitter backoff: the longest wait between attempts, real seconds")
    p.add_argument("--mqtt-version", choices=("5", "3.1.1"), default="5",
                   help="the MQTT version the devices speak: 5, or 3.1.1 for a NATS cluster's MQTT"
                        " listener (a kept session is then clean_session=0, without expiry)")
    p.add_argument("--record-until", type=float, default=None, metavar="UNIX_TIME",
                   help="record no chunk or strip that ends after this simulated time; keep "
                        "delivering the outbox (a lab run's end)")
    p.add_argument("--backlog-pace", type=float, default=None, metavar="N",
                   help="send a backlog at most N readings per simulated second per device "
                        "(default: as fast as the window allows)")
    p.add_argument("--cohort", action="append", default=[], type=_cohort,
                   metavar="NAME:COUNT[:hr=LO-HI][:strips=N]",
                   help="a group of consecutive devices with their own heart-rate range and "
                        "strips a day; repeat; the counts must add up to --devices")
    p.add_argument("--profiles", default=None, metavar="MIX",
                   help="the patients' catalogue entries, e.g. sinus:70%%,af:10%%,brady:10%%,pvc:10%% "
                        "(devices/profiles.toml; default: every device sinus)")
    p.add_argument("--profile-file", type=Path, default=None, metavar="TOML",
                   help="a catalogue file whose entries add to or replace the shipped ones")
    p.add_argument("--procs", type=int, default=1, metavar="N",
                   help=f"run the fleet in N processes (1..{MAX_PROCS}), each driving a "
                        "contiguous slice of the devices, under one supervisor (default: 1)")
    p.add_argument("--slice", type=_slice, default=None, metavar="K/N",
                   help="drive only slice K of N of the devices (a supervisor's child)")
    p.add_argument("--episode", action="append", default=[], metavar="KIND@START+DURATION[:devices=I-J]",
                   help="schedule an episode (af-episode, vt-run, pause, lead-off, ...) from START "
                        "(simulated Unix seconds or ISO time) for DURATION (20m, 6s, 3h); repeat")
    p.add_argument("--metrics-port", type=_metrics_port, default=None, metavar="N",
                   help="serve Prometheus metrics on http://HOST:N/metrics (0: a free port), recorded"
                        " in DIR/fleet/metrics.json; with --procs, slice K uses N+K-1 and"
                        " fleet/metrics-K.json (default: no metrics)")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                   help="with --metrics-port: the address to listen on (default: %(default)s)")
    return p


def _metrics_port(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= 65_535:
        raise argparse.ArgumentTypeError(f"metrics port {text!r} is not a number in 0..65535")
    return int(text)


def _cohort(spec: str) -> Cohort:
    try:
        return Cohort.parse(spec)
    except ProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _slice(spec: str) -> tuple[int, int]:
    k, sep, n = spec.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"{spec!r} is not K/N with 1 <= K <= N")
    return int(k), int(n)


def parse_args(argv: Sequence[str] | None = None) -> tuple[FleetConfig, int]:
    """The fleet's settings and the number of processes (--procs)."""
    config, procs, _ = parse_all(argv)
    return config, procs


def parse_all(argv: Sequence[str] | None = None) -> tuple[FleetConfig, int, tuple[str, int] | None]:
    """parse_args, and where to serve metrics: (host, port) with --metrics-port, else None."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not 1 <= ns.procs <= MAX_PROCS:
        parser.error(f"--procs {ns.procs} is not in 1..{MAX_PROCS}")
    if ns.procs > ns.devices:
        parser.error(f"--procs {ns.procs} is more than the {ns.devices} devices")
    if ns.procs > 1 and ns.slice is not None:
        parser.error("--slice is a child's, --procs N its supervisor's: not both")
    if ns.metrics_port and ns.metrics_port + ns.procs - 1 > 65_535:
        parser.error(f"--metrics-port {ns.metrics_port} leaves no port for each of the {ns.procs} processes")
    if not ns.metrics_host.strip():
        parser.error("--metrics-host must not be empty")
    where = None if ns.metrics_port is None else (ns.metrics_host, ns.metrics_port)
    return _config(parser, ns), ns.procs, where


def parse_config(argv: Sequence[str] | None = None) -> FleetConfig:
    return parse_args(argv)[0]


def _config(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> FleetConfig:
    try:
        return FleetConfig(
            state_dir=ns.state_dir, host=ns.host, port=ns.port, devices=ns.devices,
            delivery=ns.delivery, outbox_capacity=ns.outbox_capacity,
            outbox_policy=ns.outbox_policy, chunk_seconds=ns.chunk_seconds,
            sample_rate=ns.sample_rate, seed=ns.seed, speed=ns.speed, id_prefix=ns.id_prefix,
            ack_timeout=ns.ack_timeout, resend_cap=ns.resend_cap, window=ns.window, ecg_source=ns.ecg_source,
            history=ns.history, recording=ns.recording, strip_seconds=ns.strip_seconds,
            strips_per_day=ns.strips_per_day, strip_chunks=ns.strip_chunks,
            keepalive=ns.keepalive, reconnect_backoff=ns.reconnect_backoff, backoff_cap=ns.backoff_cap,
            backlog_pace=ns.backlog_pace, cohorts=tuple(ns.cohort), record_until=ns.record_until,
            profiles=ns.profiles, profile_file=ns.profile_file, episodes=tuple(ns.episode),
            secrets_dir=ns.secrets_dir, tls=ns.tls, mqtt311=ns.mqtt_version == "3.1.1",
            slice=ns.slice,
        )
    except ConfigError as exc:
        parser.error(str(exc))  # exits 2


def _serve_metrics(config: FleetConfig, where: tuple[str, int] | None
                   ) -> tuple[FleetMetrics | None, MetricsServer | None]:
    """The metrics and their endpoint, serving already, with --metrics-port (else None, None).
    Slice K of a fleet in several processes: port + K - 1 (a free one for 0), its own label."""
    if where is None:
        return None, None
    host, port = where
    k = None if config.slice is None else config.slice[0]
    metrics = FleetMetrics("fleet" if k is None else f"fleet-{k}")
    return metrics, MetricsServer(metrics.registry, host, port + k - 1 if port and k else port)


def main(argv: Sequence[str] | None = None) -> int:
    apply_from_env()
    config, procs, where = parse_all(argv)
    if procs > 1:
        return run_supervisor(config, sys.argv[1:] if argv is None else argv, procs)
    if config.slice is not None:
        die_with_parent()  # a kill -9 of the supervisor is a crash of every device
    try:
        metrics, server = _serve_metrics(config, where)
    except MetricsServerError as exc:  # the port is taken, the host does not resolve
        print(f"devices: error: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(config, metrics, server)
    finally:
        if server is not None:
            server.close()


def _run(config: FleetConfig, metrics: FleetMetrics | None, server: MetricsServer | None) -> int:
    try:
        fleet = Fleet(config, metrics=metrics)
    except DeviceError as exc:  # e.g. a device that is not provisioned
        print(f"devices: error: {exc}", file=sys.stderr)
        return 2
    if server is not None and metrics is not None:
        name = "metrics.json" if config.slice is None else f"metrics-{config.slice[0]}.json"
        server.write_record(config.fleet_dir / name, name=metrics.fleet, at=fleet.clock.now())

    def stop(_signum: int, _frame: object) -> None:
        fleet.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return fleet.run()
    except DeviceError as exc:
        print(f"devices: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
