"""`python -m ingest`: the ingest service (docs/architecture.md, "Ingest side").

    python -m ingest --state-dir DIR --host HOST --port PORT [--acks | --no-acks]
                     [--client-id ecgpipe-ingest] [--speed 1.0]

`main(argv)` is also what the lab's `ecgpipe ingest run ...` calls. Exit codes: 0 after a
clean stop (SIGTERM/SIGINT), 1 on an IngestError (one line on stderr), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ecgcore.clock import make_clock
from ecgcore.signals import run_until_signalled
from ecgcore.strict_warnings import apply_from_env
from ingest.errors import ConfigError, IngestError

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
    p.add_argument("--host", required=need, type=_nonempty, help="broker host" + stack)
    p.add_argument("--port", required=need, type=_port,
                   help="broker port" + (" (default: the stack's ingest link, through its proxy)"
                                         if from_stack else ""))
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
    p.add_argument("--client-id", default="ecgpipe-ingest", type=_nonempty,
                   help="MQTT client id; the persistent session is keyed by it"
                   " (default: %(default)s)")
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
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, already reported)
        return exc.code if isinstance(exc.code, int) else 2
    from ingest.keys import IngestSecrets
    from ingest.service import IngestService, ServiceConfig  # here: `ecgpipe --help` needs only the options

    try:
        secrets = (None if args.secrets_dir is None
                   else IngestSecrets.load(args.secrets_dir, tls=bool(args.tls)))
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    config = ServiceConfig(
        state_dir=args.state_dir, host=args.host, port=args.port,
        client_id=args.client_id, acks=args.acks, reconnect_max_s=args.reconnect_max,
        keepalive_s=args.keepalive, session_expiry_s=args.session_expiry, secrets=secrets,
        rate_limit=args.rate_limit or None, rate_burst=max(1.0, args.rate_burst),
    )
    try:
        service = IngestService(config, make_clock(args.speed))
    except (IngestError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1

    try:
        return run_until_signalled(service.run, service.request_stop)
    except IngestError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
