"""The `ecgpipe` command: parse arguments, call the command's handler, turn the lab's errors into one line.

Exit status: what the handler returns (0, or 1 when a scenario's check fails); 2 for bad usage:
what argparse rejects (OneLineParser) and a UsageError (a command-line value a handler
rejects); 1 for a failed operation: a LabError, a clinic.errors.ClinicError, an error of the stores' packages
(devices.errors.DeviceError, ingest.errors.IngestError, e.g. a damaged database) or an OSError
(the file and what is wrong with it); 130 for Ctrl-C. Each is one line on stderr,
`ecgpipe: error: ...`. Anything else is a bug: one line `internal error: <Type>: <message>`,
exit 1, and with ECGPIPE_DEBUG=1 the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from clinic.errors import ClinicError
from ecgcore.strict_warnings import apply_from_env
from lab.cli.commands import handlers
from lab.cli.parser import build_parser, command_name
from lab.errors import LabError, UsageError
from lab.report.sources import DATA_ERRORS

DEBUG_ENV = "ECGPIPE_DEBUG"


def run(args: argparse.Namespace) -> int:
    """Call the handler of the command `args` names."""
    name = command_name(args)
    handler = handlers().get(name)
    if handler is None:
        raise LabError(f"unknown command {name}")
    return handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    apply_from_env()  # warnings become errors when the environment asks (ecgcore.strict_warnings)
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        sys.stderr.write("ecgpipe: interrupted\n")
        return 130
    except BrokenPipeError:  # `ecgpipe logs | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail too
        return 0
    except Exception as exc:  # every failure becomes one line (see the docstring)
        message, status = one_line(exc)
        if status is None:
            if os.environ.get(DEBUG_ENV) == "1":
                raise
            message, status = f"{message} ({DEBUG_ENV}=1 prints the traceback)", 1
        sys.stderr.write(f"ecgpipe: error: {message.strip().replace(chr(10), ' ')}\n")
        return status


def one_line(exc: Exception) -> tuple[str, int | None]:
    """An exception as the CLI's one line and exit status; status None for an internal error
    (a bug: no handler expected it)."""
    if isinstance(exc, UsageError):
        return str(exc), 2
    if isinstance(exc, (LabError, ClinicError, *DATA_ERRORS)):  # DATA_ERRORS: a store that cannot be read
        return str(exc), 1
    if isinstance(exc, OSError):
        return _os_error(exc), 1
    return f"internal error: {type(exc).__name__}: {exc}", None


def _os_error(exc: OSError) -> str:
    """An OSError as '<file>: <what is wrong>' (e.g. a directory where a state file should be)."""
    what = exc.strerror or str(exc)
    return f"{exc.filename}: {what}" if exc.filename else what
