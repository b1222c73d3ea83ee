"""What every `ecgpipe` handler shares: printing progress, a document as text or JSON, the state dir."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from lab.stack.statedir import StateDir, resolve_state_dir

Handler = Callable[[argparse.Namespace], int]


def say(msg: str) -> None:
    print(msg, flush=True)


def quiet(msg: str) -> None:
    """Progress under --json: nothing, so stdout holds only the JSON document."""


def emit(doc: dict[str, Any], as_json: bool, fmt: Callable[[dict[str, Any]], str]) -> None:
    print(json.dumps(doc, indent=1, sort_keys=True, default=str) if as_json else fmt(doc))


def state_dir(args: argparse.Namespace) -> StateDir:
    """The state dir `--state-dir` names, after the command or before it, else the default."""
    return StateDir(resolve_state_dir(getattr(args, "state_dir_sub", None) or args.state_dir))
