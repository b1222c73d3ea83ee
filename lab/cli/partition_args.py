"""The `ecgpipe partition` command (issue 13): one NATS node cut off the other two, its routes'
proxies cut (lab.nemesis.partition); `ecgpipe heal nats-K` ends it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.cli.parser import OneLineParser, Subparsers

NATS_NODES = ("nats-1", "nats-2", "nats-3")


def add_partition(sub: Subparsers, common: OneLineParser) -> None:
    from lab.cli.parser import command, unit
    from lab.units import parse_duration

    pt = command(sub, "partition", "partition one NATS node from the other two: cut its routes "
                 "(through their proxies); its devices and ingest still reach it",
                 "ecgpipe partition nats-2 --for 30s\necgpipe partition nats-leader\n"
                 "ecgpipe heal nats-2", (common,))
    pt.add_argument("node", choices=(*NATS_NODES, "nats-leader"),
                    help="the node, or nats-leader: the one leading the readings' stream now")
    pt.add_argument("--blackhole", action="store_true", help="keep the route connections open but "
                    "drop every byte (the nodes' /routez still listed them after 6 min: docs/nats.md)")
    pt.add_argument("--for", dest="for_s", type=unit(parse_duration), metavar="DURATION",
                    help="simulated duration after which the partition ends by itself (30s, 2m)")


def partition(args: argparse.Namespace) -> int:
    return on_routes(args, heal=False)


def on_routes(args: argparse.Namespace, heal: bool) -> int:
    """A NATS node's partition, or (heal) its end: one line of what happened."""
    from ecgcore.clock import make_clock
    from lab.cli.output import say, state_dir
    from lab.nemesis import partition as routes

    sd = state_dir(args)
    clock = make_clock(sd.config().speed)
    if heal:
        say(routes.heal_partition(sd, clock))
    else:
        say(routes.partition(sd, args.node, clock, "blackhole" if args.blackhole else "cut", args.for_s))
    return 0
