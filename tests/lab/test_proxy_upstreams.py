"""The link proxy in front of several upstreams, as in front of a broker cluster's nodes.

New connections go to the upstreams round-robin; one that refuses (or does not answer within
CONNECT_TIMEOUT_S) is skipped for the next, and only when every one failed is the client
closed (`upstream_failed`). Existing connections stay where they are: when their upstream
dies they close. Plain TCP echo servers on free ports stand in for the nodes; the proxy runs as
a process, driven through its control file as in test_proxy.py. No fixed sleeps: every wait is a
condition with a deadline (a socket timeout or wait_until).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecgcore.clock import make_clock
from lab.nemesis.proxy import main as proxy_main
from lab.nemesis.proxyctl import describe, send, upstreams_of
from lab.nemesis.proxyflow import parse_hostport
from lab.nemesis.proxynet import CONNECT_TIMEOUT_S
from lab.stack.ports import free_port
from lab.stack.procs import python_argv
from tests.conftest import wait_until
from tests.lab.proxyutil import LinkProxy

IO_TIMEOUT_S = 10.0  # the deadline of every socket wait


class EchoServer:
    """A TCP echo server on a free loopback port (port 0), one thread per connection. `kill()`
    closes its listener and every connection it holds, as a node killed -9 does."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # the accept loop looks at _stop this often
        self.port: int = self.listener.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._conns.append(sock)
                t = threading.Thread(target=self._echo, args=(sock,), daemon=True)
                self._threads.append(t)
            t.start()

    @staticmethod
    def _echo(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                sock.sendall(data)
        sock.close()

    def kill(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._threads[0].join(IO_TIMEOUT_S)
        self.listener.close()
        with self._lock:
            for sock in self._conns:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes its echo thread, which closes it
            threads = self._threads[1:]
        for t in threads:
            t.join(IO_TIMEOUT_S)


class StuckServer:
    """A listener whose accept queue is full (backlog 0, one connection held, never accepted):
    the kernel drops further SYNs, so a connect to it neither succeeds nor is refused."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port: int = self.listener.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT_S)

    def close(self) -> None:
        self.filler.close()
        self.listener.close()


class ClusterProxy(LinkProxy):
    """`python -m lab.nemesis.proxy` with `--upstream 127.0.0.1:PORT` for each port."""

    def __init__(self, root: Path, ports: list[int], name: str = "ingest") -> None:
        # Not LinkProxy.__init__, which starts the single-upstream form: the same start, with --upstream.
        self.root, self.name, self.speed, self.killed = root, name, 1.0, False
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        self._log = (root / f"proxy-{name}.log").open("ab")
        ups = [arg for p in ports for arg in ("--upstream", f"127.0.0.1:{p}")]
        self.proc = subprocess.Popen(
            python_argv("lab.nemesis.proxy", "--state-dir", str(root), "--name", name,
                        "--listen-port", str(self.port), *ups),
            stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.state().get("pid") == self.proc.pid or self.proc.poll() is not None,
                   10, what="the proxy's first state file")
        assert self.proc.poll() is None, self.log_text()

    def log_text(self) -> str:
        return (self.root / f"proxy-{self.name}.log").read_text()


class Lab:
    """What one test made: echo servers, proxies and client sockets, all closed afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: list[EchoServer] = []
        self.proxies: list[LinkProxy] = []
        self.clients: list[socket.socket] = []
        self.stuck: list[StuckServer] = []

    def echo_servers(self, n: int) -> list[EchoServer]:
        made = [EchoServer() for _ in range(n)]
        self.servers += made
        return made

    def proxy(self, ports: list[int]) -> ClusterProxy:
        px = ClusterProxy(self.root / f"state{len(self.proxies)}", ports)
        self.proxies.append(px)
        return px

    def client(self, port: int) -> socket.socket:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
        except ConnectionResetError:
            # the proxy accepted and reset it before connect() returned (seen under load): hand
            # back a connection its peer has already closed, which is what the test sees
            sock, peer = socket.socketpair()
            peer.close()
        self.clients.append(sock)
        return sock

    def close(self) -> dict[str, int]:
        for sock in self.clients:
            sock.close()
        codes = {px.root.name: px.stop() for px in self.proxies if not px.killed}
        for server in self.servers:
            server.kill()
        for stuck in self.stuck:
            stuck.close()
        return codes


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    try:
        yield made
    finally:
        codes = made.close()
    assert set(codes.values()) <= {0}, codes


def roundtrip(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    """Send `payload` and read back as many bytes (the echo through the proxy)."""
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(len(payload) - len(got))
        assert chunk, f"closed after {got!r}"
        got += chunk
    return got


def closed(sock: socket.socket) -> bool:
    """Wait (up to the socket's timeout) for the peer to close: FIN or RST."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def ups_state(px: LinkProxy) -> list[dict[str, Any]]:
    return upstreams_of(px.state())


def accepted(servers: list[EchoServer]) -> list[int]:
    return [s.accepted for s in servers]


def test_connections_go_round_robin(lab: Lab) -> None:
    servers = lab.echo_servers(3)
    px = lab.proxy([s.port for s in servers])
    first = [lab.client(px.port) for _ in servers]
    for sock in first:
        assert roundtrip(sock) == b"ping"
    assert accepted(servers) == [1, 1, 1]
    for sock in [lab.client(px.port) for _ in servers]:
        assert roundtrip(sock) == b"ping"
    assert accepted(servers) == [2, 2, 2]
    wait_until(lambda: [u["open"] for u in ups_state(px)] == [2, 2, 2], 5, what="2 open on each upstream")
    st = px.state()
    assert [(u["port"], u["connected"], u["failures"], u["last_failure"]) for u in st["upstreams"]] == [
        (s.port, 2, 0, None) for s in servers]
    assert st["upstream"] == {"host": "127.0.0.1", "port": servers[0].port}  # the first, as before
    assert st["connections"]["open"] == 6 and st["connections"]["upstream_failed"] == 0


def test_a_dead_upstream_is_skipped_and_its_connections_close(lab: Lab) -> None:
    servers = lab.echo_servers(3)
    px = lab.proxy([s.port for s in servers])
    old = [lab.client(px.port) for _ in servers]
    for sock in old:
        roundtrip(sock)
    servers[1].kill()  # a node dies with one connection on it
    assert closed(old[1]), "the client of the dead upstream stays open"
    old[1].close()  # as an MQTT client does on EOF; the proxy then closes its connection
    for sock in (old[0], old[2]):  # the others are not moved, nor touched
        assert roundtrip(sock, b"still") == b"still"
    new = [lab.client(px.port) for _ in range(6)]
    for sock in new:
        assert roundtrip(sock) == b"ping"
    assert accepted(servers)[1] == 1 and servers[0].accepted > 1 and servers[2].accepted > 1
    assert sum(accepted(servers)) == 3 + 6

    def settled() -> bool:
        st = px.state()
        return st["connections"]["open"] == 2 + 6 and ups_state(px)[1]["failures"] > 0

    wait_until(settled, 5, what="the dead upstream's failures in the state file")
    st = px.state()
    dead = st["upstreams"][1]
    assert dead["open"] == 0 and dead["connected"] == 1 and dead["failing"]
    assert "refused" in dead["last_failure"]["error"].lower()
    assert st["connections"]["upstream_failed"] == 0
    assert [u["open"] for u in st["upstreams"]] == [servers[0].accepted, 0, servers[2].accepted]


def test_every_upstream_refusing_closes_the_client(lab: Lab) -> None:
    servers = lab.echo_servers(3)
    px = lab.proxy([s.port for s in servers])
    for server in servers:
        server.kill()
    sock = lab.client(px.port)
    with contextlib.suppress(OSError):  # the proxy may have reset it already
        sock.sendall(b"ping")
    assert closed(sock)
    wait_until(lambda: px.state()["connections"]["upstream_failed"] == 1, 5, what="upstream_failed 1")
    st = px.state()
    assert st["connections"]["open"] == 0 and st["connections"]["accepted"] == 1
    assert [u["failures"] for u in st["upstreams"]] == [1, 1, 1]
    assert all(u["last_failure"]["at"] is not None and u["failing"] for u in st["upstreams"])
    assert f"upstream 127.0.0.1:{servers[2].port} failed" in px.log_text()


def test_a_silent_upstream_times_out_without_blocking_the_others(lab: Lab) -> None:
    stuck = StuckServer()
    lab.stuck.append(stuck)
    (server,) = lab.echo_servers(1)
    px = lab.proxy([stuck.port, server.port])
    t0 = time.monotonic()
    waiting = lab.client(px.port)  # round-robin gives it the stuck upstream first
    waiting.sendall(b"first")
    quick = lab.client(px.port)  # ... and this one the echo server: the loop is not held up
    assert roundtrip(quick) == b"ping"
    waiting.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing yet: the stuck connect has not timed out
        waiting.recv(16)
    waiting.settimeout(IO_TIMEOUT_S)
    assert waiting.recv(16) == b"first"  # buffered while it waited, then sent on the next upstream
    assert time.monotonic() - t0 >= CONNECT_TIMEOUT_S * 0.95
    wait_until(lambda: [(u["failures"], u["connected"]) for u in ups_state(px)] == [(1, 0), (0, 2)], 5,
               what="the timeout and the second connection in the state file")
    st = px.state()
    assert st["upstreams"][0]["last_failure"]["error"] == f"no answer within {CONNECT_TIMEOUT_S:g} s"
    assert st["connections"]["upstream_failed"] == 0


def test_cut_resets_connections_on_every_upstream(lab: Lab) -> None:
    servers = lab.echo_servers(3)
    px = lab.proxy([s.port for s in servers])
    socks = [lab.client(px.port) for _ in servers]
    for sock in socks:
        roundtrip(sock)
    assert accepted(servers) == [1, 1, 1]
    fault, before, after = send(px.root, px.name, "cut", make_clock(1.0))
    text = describe(px.name, fault, before, after)
    assert ", ".join(f"127.0.0.1:{s.port}" for s in servers) in text
    assert after["last_apply"]["reset"] == 3
    for sock in socks:
        assert closed(sock)
    during = lab.client(px.port)
    assert closed(during)  # accepted and reset at once, whatever upstream was next
    assert accepted(servers) == [1, 1, 1]
    px.apply("heal")
    healed = [lab.client(px.port) for _ in servers]
    for sock in healed:
        assert roundtrip(sock) == b"ping"
    assert sum(accepted(servers)) == 6
    st = px.state()
    assert st["connections"]["refused"] == 1 and st["connections"]["upstream_failed"] == 0


def test_the_single_upstream_options_still_work(lab: Lab) -> None:
    (server,) = lab.echo_servers(1)
    px = LinkProxy(lab.root / "single", server.port)  # --upstream-host 127.0.0.1 --upstream-port P
    lab.proxies.append(px)
    assert roundtrip(lab.client(px.port)) == b"ping"
    wait_until(lambda: ups_state(px) and ups_state(px)[0]["open"] == 1, 5, what="one open connection")
    st = px.state()
    assert st["upstream"] == {"host": "127.0.0.1", "port": server.port}
    only = [(u["host"], u["port"], u["connected"]) for u in st["upstreams"]]
    assert only == [("127.0.0.1", server.port, 1)]
    assert upstreams_of({"upstream": st["upstream"]}) == [st["upstream"]]  # an older state file


@pytest.mark.parametrize("args", [
    ["--upstream", "127.0.0.1:1", "--upstream-port", "2"],  # both forms at once
    ["--upstream", "127.0.0.1"],  # no port
    ["--upstream", "127.0.0.1:99999"],
    [],  # no upstream at all
])
def test_upstream_arguments_are_checked(tmp_path: Path, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        proxy_main(["--state-dir", str(tmp_path), "--name", "ingest", "--listen-port", "1", *args])
    assert exc.value.code == 2


def test_parse_hostport() -> None:
    assert parse_hostport("node-1.lab:4222") == ("node-1.lab", 4222)
    for bad in ("4222", ":4222", "host:", "host:x", "host:0"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_hostport(bad)
