"""The `ecgpipe` command: parse arguments, call the command's handler, turn the lab's errors into one line.

Exit status: what the handler returns (0, or 1 when a scenario's check fails); 1 for a LabError
(one line on stderr); 2 for a usage error (OneLineParser); 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ecgcore.strict_warnings import apply_from_env
from lab.cli.commands import HANDLERS
from lab.cli.parser import build_parser, command_name
from lab.errors import LabError


def run(args: argparse.Namespace) -> int:
    """Call the handler of the command `args` names."""
    name = command_name(args)
    handler = HANDLERS.get(name)
    if handler is None:
        raise LabError(f"unknown command {name}")
    return handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    apply_from_env()  # warnings become errors when the environment asks (ecgcore.strict_warnings)
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except LabError as exc:
        sys.stderr.write(f"ecgpipe: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("ecgpipe: interrupted\n")
        return 130
