"""A throwaway PostgreSQL server: a cluster made with initdb, one `postgres` process on a free
loopback port, for tests, benchmarks and the lab's local development store.

    init_cluster(data_dir)                       initdb -A trust (local development only)
    server_argv(data_dir, port, socket_dir)      the argv that runs the server in the foreground
    with temporary_server(tmp_dir) as dsn: ...   all of it, plus the `ecgpipe` database, stopped
                                                 (SIGINT: fast shutdown) and removed afterwards

Binaries: the highest version under /usr/lib/postgresql/*/bin (Debian's layout; $ECGPIPE_PG_BIN
names another folder); PgServerError says so when there is none.

Root. PostgreSQL refuses to run as root, and this machine and CI run as root. When the
effective uid is 0, initdb and postgres run as the `postgres` system user (Debian's package
makes it) through `setpriv --reuid=postgres --regid=postgres --init-groups`, which execs, so
the pid we hold is the server's own and signals reach it directly. The data and socket folders
are chown'ed to that user, and every folder above them must let it through (the x bit):
pytest's tmp_path lives under /tmp/pytest-of-root/ (mode 0700), so temporary_server never puts
the cluster there; it makes its own parent with tempfile.mkdtemp under the system's temp folder
and opens it to 0711 (others may pass through but not list it), and removes it afterwards.
init_cluster checks the path of a data dir it is given and says which folder blocks the way.
(The short parent also keeps the Unix socket's path under its 107-byte limit.)

Durability: `durable=False` (tests) runs initdb --no-sync and the server with fsync=off, which
is fine for a server whose data is thrown away; benchmarks that compare commit costs pass
durable=True (fsync=on, synchronous_commit on: the server's defaults).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from ecgcore.waiting import wait_until

PG_USER = "postgres"  # the system user (when root) and the cluster's superuser
DATABASE = "ecgpipe"
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 30.0
_PORT_ATTEMPTS = 5


class PgServerError(Exception):
    """PostgreSQL could not be found, initialised, started or stopped; the message says why."""


def bin_dir() -> Path:
    """The folder of the highest installed PostgreSQL version's binaries."""
    env = os.environ.get("ECGPIPE_PG_BIN")
    if env:
        if not (Path(env) / "postgres").is_file():
            raise PgServerError(f"ECGPIPE_PG_BIN={env}: no postgres binary there")
        return Path(env)
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").is_file()]
    if not found:
        raise PgServerError("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/postgres"
                            " (scripts/setup installs Debian's postgresql package)")

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name)) or (0,)

    return max(found, key=version)


def _as_root() -> bool:
    return os.geteuid() == 0


def _prefix() -> list[str]:
    """What runs a PostgreSQL binary as the postgres user when we are root (nothing otherwise)."""
    if not _as_root():
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError as exc:
        raise PgServerError(f"running as root, and there is no {PG_USER!r} user to run"
                            " PostgreSQL as (Debian's postgresql package creates it)") from exc
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise PgServerError("running as root, and setpriv (util-linux) is not installed")
    return [setpriv, f"--reuid={PG_USER}", f"--regid={PG_USER}", "--init-groups"]


def _give_to_postgres(path: Path, mode: int = 0o700) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if _as_root():
        pw = pwd.getpwnam(PG_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    path.chmod(mode)


def own_dir(path: Path, mode: int = 0o700) -> None:
    """Make `path` (and its parents) and give it to the user PostgreSQL runs as."""
    _give_to_postgres(path, mode)


def is_ready(port: int) -> bool:
    """Whether the server on 127.0.0.1:port accepts connections (pg_isready)."""
    return _ready(port)


def _check_traversable(path: Path) -> None:
    """As root, every folder above `path` must let the postgres user through."""
    if not _as_root():
        return
    pw = pwd.getpwnam(PG_USER)
    groups = set(os.getgrouplist(PG_USER, pw.pw_gid))
    for parent in path.resolve().parents:
        st = parent.stat()
        ok = (st.st_mode & 0o001 or (st.st_gid in groups and st.st_mode & 0o010)
              or (st.st_uid == pw.pw_uid and st.st_mode & 0o100))
        if not ok:
            raise PgServerError(f"{parent} (mode {st.st_mode & 0o777:o}) does not let the"
                                f" {PG_USER} user through to {path}: chmod o+x it, or put the"
                                " cluster elsewhere")


def init_cluster(data_dir: Path, *, no_sync: bool = False) -> None:
    """initdb a new cluster in `data_dir` (trust authentication: a local development cluster,
    listening on 127.0.0.1 only). no_sync: initdb --no-sync, for throwaway test clusters."""
    data_dir = Path(data_dir)
    _check_traversable(data_dir)
    _give_to_postgres(data_dir)
    argv = [*_prefix(), str(bin_dir() / "initdb"), "-D", str(data_dir), "-A", "trust",
            "-U", PG_USER, "-E", "UTF8", "--locale=C"]
    if no_sync:
        argv.append("--no-sync")
    done = subprocess.run(argv, cwd=data_dir, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PgServerError(f"initdb {data_dir} failed (exit {done.returncode}): {' / '.join(tail)}")


def server_argv(data_dir: Path, port: int, socket_dir: Path, *, fsync: bool = True) -> list[str]:
    """The argv of the server in the foreground (as the postgres user when we are root)."""
    return [*_prefix(), str(bin_dir() / "postgres"), "-D", str(data_dir), "-p", str(port),
            "-k", str(socket_dir), "-c", "listen_addresses=127.0.0.1",
            "-c", f"fsync={'on' if fsync else 'off'}", "-c", "synchronous_commit=on"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dsn_for(port: int, dbname: str = DATABASE) -> str:
    return f"postgresql://{PG_USER}@127.0.0.1:{port}/{dbname}"


def _ready(port: int) -> bool:
    done = subprocess.run([str(bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port),
                           "-d", "postgres", "-U", PG_USER], check=False)
    return done.returncode == 0


def start_server(data_dir: Path, port: int, socket_dir: Path, log: Path, *,
                 fsync: bool = True) -> subprocess.Popen[bytes]:
    """Start the server and wait (with a deadline) until it accepts connections."""
    _give_to_postgres(socket_dir, 0o755)
    with log.open("ab") as out:
        proc = subprocess.Popen(server_argv(data_dir, port, socket_dir, fsync=fsync),
                                stdout=out, stderr=subprocess.STDOUT, cwd=data_dir)
    if wait_until(lambda: _ready(port), START_DEADLINE_S, give_up=lambda: proc.poll() is not None):
        return proc
    if proc.poll() is not None:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise PgServerError(f"postgres on port {port} exited with {proc.returncode}:"
                            f" {' / '.join(tail)}")
    stop_server(proc)
    raise PgServerError(f"postgres on port {port} did not accept connections within"
                        f" {START_DEADLINE_S:.0f} s (log: {log})")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit), with a deadline;
    immediate shutdown (SIGQUIT) if it has not stopped by then."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired as exc:
            raise PgServerError(f"postgres (pid {proc.pid}) did not stop") from exc


def create_database(admin_dsn: str, name: str) -> None:
    """CREATE DATABASE `name` (a plain identifier) through `admin_dsn`."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise PgServerError(f"database name {name!r}: use lower-case letters, digits and _")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def temporary_server(tmp_dir: Path, *, durable: bool = False) -> Iterator[str]:
    """A fresh cluster and server with an `ecgpipe` database; yields its DSN. The server's log
    is tmp_dir/postgres-PORT.log; the cluster lives in its own 0711 parent (see the module
    docstring) and is removed afterwards."""
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ecgpipe-pg-"))
    try:
        root.chmod(0o711)
        data, sock = root / "data", root / "sock"
        init_cluster(data, no_sync=not durable)
        proc, port = _start_on_free_port(data, sock, tmp_dir, fsync=durable)
        try:
            create_database(dsn_for(port, "postgres"), DATABASE)
            yield dsn_for(port)
        finally:
            stop_server(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start_on_free_port(data: Path, sock: Path, log_dir: Path, *,
                        fsync: bool) -> tuple[subprocess.Popen[bytes], int]:
    """A free port may be taken between finding it and the server binding it: try again."""
    for attempt in range(_PORT_ATTEMPTS):
        port = free_port()
        try:
            return start_server(data, port, sock, log_dir / f"postgres-{port}.log", fsync=fsync), port
        except PgServerError:
            if attempt == _PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
