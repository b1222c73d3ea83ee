"""`python -m analysis`: the analysis stage (docs/architecture.md, "Analysis stage").

    python -m analysis --state-dir DIR [--speed 1.0] [--poll SECONDS] [--max-batch 500]

Reads newly stored readings from DIR/ingest/ingest.sqlite (read-only) and writes beats, events
and its cursor to DIR/analysis/analysis.sqlite. Exit codes: 0 after a clean stop
(SIGTERM/SIGINT), 1 on an AnalysisError (one line on stderr), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from analysis.errors import AnalysisError
from ecgcore.clock import make_clock
from ecgcore.priority import yield_cpu
from ecgcore.signals import run_until_signalled
from ecgcore.strict_warnings import apply_from_env

PROG = "python -m analysis"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive(what: str, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not a number") from None
        if not (math.isfinite(value) and 0 < value <= hi):
            raise argparse.ArgumentTypeError(f"{what} must be more than 0 and at most {hi:g}, got {text}")
        return value

    return parse


def _nice(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"nice {text!r} is not an integer") from None
    if not 0 <= value <= 19:
        raise argparse.ArgumentTypeError(f"nice must be 0..19, got {value}")
    return value


def _batch(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"max-batch {text!r} is not an integer") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"max-batch must be 1..100000, got {value}")
    return value


POLL_SIM_S = 5.0


def default_poll(speed: float) -> float:
    """Real seconds between looks at the store while it keeps up: 5 simulated seconds (the
    clinical section calls an event live within 60; five 1-s readings a device per batch cost
    a quarter of one each: docs/benchmarks.md), at most 5 real seconds, at least 0.01."""
    return max(0.01, min(POLL_SIM_S, POLL_SIM_S / speed))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Derive heart rate and rhythm from stored readings and raise"
                " clinical events into DIR/analysis/analysis.sqlite.")
    p.add_argument("--state-dir", required=True, type=Path, metavar="DIR",
                   help="state dir: reads DIR/ingest/ingest.sqlite, writes DIR/analysis/")
    p.add_argument("--speed", default=1.0, type=_positive("speed", 1e9),
                   help="simulated-clock speed; raised_at comes from this clock (default 1.0)")
    p.add_argument("--poll", default=None, type=_positive("poll", 60), metavar="SECONDS",
                   help="real seconds between looks at the store while it keeps up (default: 5"
                   " simulated seconds at --speed, at most 5 and at least 0.01)")
    p.add_argument("--nice", default=19, type=_nice, metavar="N",
                   help="lower this process's CPU priority by N (default 19): on a busy machine"
                   " ingest and the fleet come first, and the analysis catches up when it can")
    p.add_argument("--max-batch", default=500, type=_batch,
                   help="readings per batch (one transaction) (default 500)")
    return p


def main(argv: list[str] | None = None) -> int:
    apply_from_env()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    from analysis.service import AnalysisService, ServiceConfig

    if args.nice:
        yield_cpu(args.nice)  # the nice value and its session's autogroup (ecgcore/priority.py)

    try:
        poll = args.poll if args.poll is not None else default_poll(args.speed)
        service = AnalysisService(ServiceConfig(args.state_dir, poll_s=poll,
                                                max_batch=args.max_batch), make_clock(args.speed))
    except (AnalysisError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1

    try:
        return run_until_signalled(service.run, service.request_stop)
    except AnalysisError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
