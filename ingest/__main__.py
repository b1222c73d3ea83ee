"""`python -m ingest`: the ingest service (docs/architecture.md, "Ingest side").

    python -m ingest --state-dir DIR --host HOST --port PORT [--acks | --no-acks]
                     [--client-id ecgpipe-ingest] [--speed 1.0]
    python -m ingest --state-dir DIR --nats nats://H:P,... --mqtt-servers H:P,... [--worker K] ...
    ... [--metrics-port N [--metrics-host 127.0.0.1]]   Prometheus metrics (docs/metrics.md)

`main(argv)` is also what the lab's `ecgpipe ingest run ...` calls. Exit codes: 0 after a
clean stop (SIGTERM/SIGINT), 1 on an IngestError or a metrics port that cannot be served
(one line on stderr), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ecgcore.clock import make_clock
from ecgcore.signals import run_until_signalled
from ecgcore.strict_warnings import apply_from_env
from ingest.errors import ConfigError, IngestError

if TYPE_CHECKING:
    from ecgcore.metrics_http import MetricsServer
    from ingest.metrics import IngestMetrics

PROG = "python -m ingest"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One clear line on stderr instead of argparse's usage block."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_in(what: str, lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: a whole number in lo..hi, or one clear line naming `what`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} {value} is not in {lo}..{hi}")
        return value

    return parse


_port = _int_in("port", 1, 65_535)
_metrics_port = _int_in("metrics port", 0, 65_535)
_keepalive = _int_in("keepalive", 1, 65_535)
_session_expiry = _int_in("session expiry", 0, 2**32 - 1)


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed {text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"speed {text} must be a positive number")
    return value


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=DESCRIPTION)
    add_service_options(p)
    return p


DESCRIPTION = ("Receive ECG readings over MQTT, validate them, store them durably in"
               " DIR/ingest/ingest.sqlite and acknowledge them (PUBACK only after commit).")


def add_service_options(p: argparse.ArgumentParser, *, from_stack: bool = False) -> None:
    """The service's options. `from_stack`: `ecgpipe ingest run`, where the state dir, the
    broker and --acks default to the stack's (so they are optional and default to None)."""
    need = not from_stack
    stack = " (default: the stack's)" if from_stack else ""
    # under `ecgpipe`, the dest the lab's other commands use for a --state-dir after the command
    p.add_argument("--state-dir", required=need, type=str if from_stack else Path, metavar="DIR",
                   dest="state_dir_sub" if from_stack else "state_dir", default=argparse.SUPPRESS,
                   help="state dir; the store and ready.json go to DIR/ingest/"
                   " (created if missing)" + (" (default ./.ecgpipe, or $ECGPIPE_STATE_DIR)"
                                              if from_stack else ""))
    # required unless --nats (checked in main)
    p.add_argument("--host", type=_nonempty, help="broker host" + stack)
    p.add_argument("--port", type=_port,
                   help="broker port" + (" (default: the stack's ingest link, through its proxy)"
                                         if from_stack else ""))
    if not from_stack:
        add_nats_options(p)
    p.add_argument("--acks", action=argparse.BooleanOptionalAction, default=None if from_stack else False,
                   help="publish end-to-end acks on heartcheck/<id>/ack after commit"
                   + (" (default: on when the stack's delivery is end-to-end)" if from_stack
                      else " (default: off)"))
    p.add_argument("--secrets-dir", type=Path, metavar="DIR", default=None,
                   help="a secure stack's provisioned secrets (`ecgpipe provision`; DIR/secrets):"
                   " log in as `ingest`, verify every reading's signature with its device's key,"
                   " sign acks and the service status"
                   + (" (default: the stack's)" if from_stack else
                      " (default: anonymous, nothing verified or signed)"))
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None if from_stack else True,
                   help="with --secrets-dir: reach the broker over TLS with ingest's certificate"
                   + (" (default: the stack's)" if from_stack else " (default: on)"))
    p.add_argument("--rate-limit", default=20.0, type=_rate, metavar="N",
                   help="per device: at most N messages a second (of the --speed clock) once its "
                        "burst is spent; the rest are refused before they are decoded, counted per "
                        "device (reason rate-limited), never confirmed; 0: no limit (default 20)")
    p.add_argument("--rate-burst", default=5000.0, type=_rate, metavar="N",
                   help="per device: messages it may send at once, e.g. an outbox's backlog after "
                        "an outage (default 5000, the default outbox capacity)")
    p.add_argument("--client-id", default=None, type=_nonempty,
                   help="MQTT client id; the persistent session is keyed by it"
                   " (default: ecgpipe-ingest, or ecgpipe-ingest-WORKER)")
    p.add_argument("--store-dsn", default=None, type=_nonempty, metavar="DSN",
                   help="store in PostgreSQL at DSN (postgresql://user@host:port/db; no password in it:"
                        " use trust or ~/.pgpass) instead of DIR/ingest/ingest.sqlite; the lab reads it"
                        " through DIR/ingest/store.json (default: SQLite)")
    p.add_argument("--worker", default=None, type=_worker, metavar="NAME",
                   help="run as one of several ingest workers sharing the readings (an MQTT shared"
                        " subscription, $share/ecgpipe-ingest/...), with its own status topic,"
                        " DIR/ingest/ready-NAME.json and session-NAME.json; NAME: 1-16 of a-z, 0-9,"
                        " '-' (default: the one ingest service)")
    p.add_argument("--speed", default=None if from_stack else 1.0, type=_speed,
                   help="simulated-clock speed; timestamps come from this clock"
                   + (stack if from_stack else " (default: %(default)s)"))
    p.add_argument("--keepalive", default=30, type=_keepalive, metavar="SECONDS",
                   help="MQTT keepalive, real seconds: the broker says ingest is offline (its "
                        "Last Will) after 1.5 times this without a packet (default 30)")
    p.add_argument("--session-expiry", default=86_400, type=_session_expiry, metavar="SECONDS",
                   help="how long the broker keeps ingest's session (its queue) while ingest is "
                        "away, real seconds (default 86400)")
    p.add_argument("--reconnect-max", default=4.0, type=_reconnect, metavar="SECONDS",
                   help="longest wait between attempts to reach the broker again, real seconds;"
                   " the first wait is a quarter of it, doubling (default: %(default)s: 1, 2, 4, 4, ...)")
    add_metrics_options(p)


def add_metrics_options(p: argparse.ArgumentParser) -> None:
    """Prometheus metrics (ingest/metrics.py, docs/metrics.md)."""
    p.add_argument("--metrics-port", default=None, type=_metrics_port, metavar="N",
                   help="serve Prometheus metrics on http://HOST:N/metrics (0: a free port) and say"
                        " where in DIR/ingest/metrics.json (metrics-WORKER.json for a worker);"
                        " a port that is taken stops the service at start (default: no metrics)")
    p.add_argument("--metrics-host", default="127.0.0.1", type=_nonempty, metavar="HOST",
                   help="with --metrics-port: the address to listen on (default: %(default)s)")


def add_nats_options(p: argparse.ArgumentParser) -> None:
    """The NATS cluster as the broker (ingest/nats_source.py): --host/--port are then unused."""
    p.add_argument("--nats", default=None, type=_nats_servers, metavar="URLS",
                   help="read the readings from the NATS JetStream cluster at URLS"
                        " (nats://HOST:PORT,nats://HOST:PORT,...): every worker fetches from the"
                        " shared durable consumer ecgpipe-ingest on $MQTT_msgs (default: one MQTT"
                        " broker, --host/--port)")
    p.add_argument("--mqtt-servers", default=None, type=_mqtt_servers, metavar="HOST:PORT,...",
                   help="with --nats: the cluster's MQTT listeners, for end-to-end acks and the"
                        " retained status (the next one after a failure) (default: --host:--port)")
    p.add_argument("--nats-ack-wait", default=30.0, type=_ack_wait, metavar="SECONDS",
                   help="with --nats: JetStream hands a reading to another worker when it is not"
                        " acknowledged within this, e.g. after a kill -9 (default 30)")


def _nats_servers(text: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in text.split(",") if u.strip())
    for url in urls:
        scheme, _, rest = url.partition("://")
        host, _, port = rest.rpartition(":")
        if scheme not in ("nats", "tls") or not host or not port.isdigit() or not 1 <= int(port) <= 65_535:
            raise argparse.ArgumentTypeError(f"{url!r} is not nats://HOST:PORT")
    if not urls:
        raise argparse.ArgumentTypeError("no NATS server given")
    return urls


def _mqtt_servers(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65_535:
            raise argparse.ArgumentTypeError(f"{item!r} is not HOST:PORT")
        out.append((host, int(port)))
    if not out:
        raise argparse.ArgumentTypeError("no MQTT server given")
    return tuple(out)


def _ack_wait(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and 0.1 <= value <= 86_400):
        raise argparse.ArgumentTypeError(f"must be 0.1..86400 seconds, got {text}")
    return value


def _worker(text: str) -> str:
    from wire.errors import WireError
    from wire.topics import check_worker
    try:
        return check_worker(text)
    except WireError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _reconnect(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and 0.01 <= value <= 3600):
        raise argparse.ArgumentTypeError(f"must be 0.01..3600 seconds, got {text}")
    return value


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    apply_from_env()
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
        nats = getattr(args, "nats", None)
        mqtt_servers: tuple[tuple[str, int], ...] = getattr(args, "mqtt_servers", None) or ()
        if args.host is None or args.port is None:
            if nats is None:
                parser.error("the following arguments are required: --host, --port (or --nats)")
            elif not mqtt_servers:
                parser.error("--nats needs --mqtt-servers (or --host and --port)")
    except SystemExit as exc:  # --help (0) or a bad argument (2, already reported)
        return exc.code if isinstance(exc.code, int) else 2
    host, port = (args.host, args.port) if args.host is not None else mqtt_servers[0]
    from ingest.keys import IngestSecrets
    from ingest.service import IngestService, ServiceConfig  # here: `ecgpipe --help` needs only the options

    try:
        secrets = (None if args.secrets_dir is None
                   else IngestSecrets.load(args.secrets_dir, tls=bool(args.tls)))
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    config = ServiceConfig(
        state_dir=args.state_dir, host=host, port=port,
        nats_servers=nats or (), mqtt_servers=mqtt_servers,
        nats_ack_wait_s=getattr(args, "nats_ack_wait", 30.0),
        client_id=args.client_id or ("ecgpipe-ingest" if args.worker is None
                                     else f"ecgpipe-ingest-{args.worker}"),
        worker=args.worker, store_dsn=args.store_dsn, acks=args.acks, reconnect_max_s=args.reconnect_max,
        keepalive_s=args.keepalive, session_expiry_s=args.session_expiry, secrets=secrets,
        rate_limit=args.rate_limit or None, rate_burst=max(1.0, args.rate_burst),
    )
    from ecgcore.metrics_http import MetricsServerError
    try:
        metrics, server = _serve_metrics(args, args.worker)
    except MetricsServerError as exc:  # the port is taken, the host does not resolve
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            service = IngestService(config, make_clock(args.speed), metrics=metrics)
        except (IngestError, OSError) as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2 if isinstance(exc, ConfigError) else 1
        if server is not None:
            from ingest.service import worker_file
            server.write_record(config.ingest_dir / worker_file("metrics.json", config.worker),
                                name=_metrics_name(config.worker), at=service.clock.now())
        try:
            return run_until_signalled(service.run, service.request_stop)
        except IngestError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 1
    finally:
        if server is not None:
            server.close()


def _metrics_name(worker: str | None) -> str:
    """The endpoint's name and its `worker` label: the lab's component name."""
    return "ingest" if worker is None else f"ingest-{worker}"


def _serve_metrics(args: argparse.Namespace,
                   worker: str | None) -> tuple[IngestMetrics | None, MetricsServer | None]:
    """With --metrics-port: the metrics and their endpoint, serving already (bound before the
    service opens its store, so a port that is taken fails at once)."""
    if args.metrics_port is None:
        return None, None
    from ecgcore.metrics_http import MetricsServer
    from ingest.metrics import IngestMetrics

    metrics = IngestMetrics(_metrics_name(worker))
    return metrics, MetricsServer(metrics.registry, args.metrics_host, args.metrics_port)


if __name__ == "__main__":
    sys.exit(main())
