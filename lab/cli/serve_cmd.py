"""`ecgpipe serve`: the clinic API (clinic/api) under uvicorn, in the foreground.

    ecgpipe serve [--host 127.0.0.1] [--port 8000]     serve the state dir until SIGTERM or Ctrl-C
    ecgpipe serve --port 0                             a free port, chosen by the system
    ecgpipe serve --add-user NAME                      make NAME's token (if missing) and exit

Where it listens is written, once uvicorn has started, to DIR/serve/serve.json:
`{"host", "port", "url", "pid", "started_at", "tokens"}` (`tokens`: the folder of the token files);
tests and scripts wait for that file. It is removed when the server stops. A second `serve` on
the same state dir while serve.json names a live process is refused (one line, exit 1).

Tokens: the first `serve` makes the default user's (`clinician`) token file; `serve` then says
where the token files are and never prints a token (clinic/api/tokens.py). SIGTERM and Ctrl-C
stop the server gracefully (uvicorn finishes the requests in progress) and `serve` exits 0.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from clinic.api.tokens import DEFAULT_USER, check_user, ensure_user, token_dir
from clinic.errors import ClinicError
from ecgcore.files import JsonFileError, load_json, write_json_atomic
from lab.stack.statedir import StateDir

if TYPE_CHECKING:
    import argparse

    from lab.cli.parser import OneLineParser, Subparsers


def serve_file(sd: StateDir) -> Path:
    return sd.root / "serve" / "serve.json"


def add_user(sd: StateDir, user: str) -> int:
    _require_root(sd)
    path, made = ensure_user(sd.root, user)
    print(f"{user}'s token {'made' if made else 'is already'} in {path} (mode 0600; "
          f"send it as `Authorization: Bearer <token>`)", flush=True)
    return 0


def _require_root(sd: StateDir) -> None:
    if not sd.root.is_dir():
        raise ClinicError(f"no ecgpipe state in {sd.root}: run `ecgpipe up` first (or pass --state-dir)")


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refuse_second_server(sd: StateDir) -> None:
    try:
        doc = load_json(serve_file(sd))
    except JsonFileError:  # a damaged serve.json is a stale one: it is rewritten
        return
    if isinstance(doc, dict) and _alive(doc.get("pid")):
        raise ClinicError(f"already serving this state dir at {doc.get('url')} (pid {doc.get('pid')}); "
                          f"see {serve_file(sd)}")


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise ClinicError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server that writes serve.json once started and removes it when stopping, and
    does not re-raise the signal that stopped it (so `serve` returns 0 after SIGTERM)."""

    def __init__(self, config: uvicorn.Config, where: Path, doc: dict[str, Any]) -> None:
        super().__init__(config)
        self.where, self.doc = where, doc

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            write_json_atomic(self.where, {**self.doc, "started_at": time.time()})
            print(f"serving {self.doc['url']}/api (OpenAPI {self.doc['url']}/docs); tokens in "
                  f"{self.doc['tokens']}/<user>.token; Ctrl-C or SIGTERM stops it", flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(OSError):
            self.where.unlink()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def run_serve(sd: StateDir, host: str, port: int) -> int:
    from clinic.api.app import create_app

    _require_root(sd)
    _refuse_second_server(sd)
    path, made = ensure_user(sd.root, DEFAULT_USER)
    if made:
        print(f"made the token of user {DEFAULT_USER} in {path} (mode 0600)", flush=True)
    sock = _listen(host, port)
    bound = int(sock.getsockname()[1])
    doc = {"host": host, "port": bound, "url": _url(host, bound), "pid": os.getpid(),
           "tokens": str(token_dir(sd.root))}
    config = uvicorn.Config(create_app(sd), log_level="info", access_log=True,
                            server_header=False, proxy_headers=False)
    server = _Server(config, serve_file(sd), doc)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        with contextlib.suppress(OSError):
            serve_file(sd).unlink()
    return 0


def _port(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 .. 65535 (0: a free one), got {text}")
    return value


def add_arguments(sub: Subparsers, common: OneLineParser) -> None:
    from lab.cli.parser import command

    sv = command(sub, "serve",
                 "serve the clinicians' read-only HTTP API (and the live page) over the state dir, in "
                 "the foreground until Ctrl-C or SIGTERM; where it listens goes to DIR/serve/serve.json. "
                 "Each user's token is a file DIR/secrets/api/<user>.token (0600), never printed",
                 "ecgpipe serve --port 8000\necgpipe serve --port 0 --host 0.0.0.0\n"
                 "ecgpipe serve --add-user alice", (common,))
    sv.add_argument("--host", default="127.0.0.1", metavar="HOST", help="the address to listen on")
    sv.add_argument("--port", type=_port, default=8000, metavar="PORT",
                    help="the TCP port; 0: a free one (serve.json says which)")
    sv.add_argument("--add-user", default=None, metavar="NAME",
                    help="make NAME's token file (if missing), say where it is, and exit")


def serve(args: argparse.Namespace) -> int:
    from clinic.errors import BadRequestError
    from lab.cli.output import state_dir
    from lab.errors import UsageError

    sd = state_dir(args)
    if args.add_user is not None:
        try:
            check_user(args.add_user)
        except BadRequestError as exc:
            raise UsageError(f"--add-user: {exc}") from exc
        return add_user(sd, args.add_user)
    return run_serve(sd, args.host, args.port)
