"""The `ecgpipe` arguments and handlers of the clinic side (issue 14): export and serve."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.cli.parser import OneLineParser, Subparsers


def add_export(sub: Subparsers, common: OneLineParser) -> None:
    """`ecgpipe export` (clinic/export; its arguments are lab/cli/export_cmd.py's)."""
    from lab.cli.export_cmd import add_arguments

    add_arguments(sub, common)


def add_serve(sub: Subparsers, common: OneLineParser) -> None:
    """`ecgpipe serve` (clinic/api; its arguments are lab/cli/serve_cmd.py's)."""
    from lab.cli.serve_cmd import add_arguments

    add_arguments(sub, common)


def export(args: argparse.Namespace) -> int:
    from lab.cli import export_cmd

    return export_cmd.run(args)


def serve(args: argparse.Namespace) -> int:
    from lab.cli import serve_cmd

    return serve_cmd.serve(args)
