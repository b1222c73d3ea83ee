"""The proxy's forwarding engine: sockets, one `selectors` loop step, and what a fault does to them.

One thread, no thread per connection. Each accepted connection gets its own upstream
connection, to the next upstream address in round-robin order; one that refuses or does not
answer within CONNECT_TIMEOUT_S (a timer: connects never block) is skipped for the next, and
the client is reset only when all failed. Bytes go both ways through a `Flow` per direction
("upstream" = client → upstream, "downstream" = back). `transition(effect)` switches the
engine to a new `Effect` and does to the existing connections what that takes:

    cut        every connection is reset (SO_LINGER 0 → RST, both ends); new ones are
               accepted and reset at once
    blackhole  connections stay open; every byte read is dropped, FINs too. New connections
               are accepted and blackholed (no upstream connection is made). Leaving the
               blackhole resets the connections that lost bytes: their byte streams are broken.
    slow       each chunk waits latency ± jitter (never overtaking the chunk before it);
               bandwidth caps bytes/s per direction and connection (token bucket)

The engine knows nothing of files or fault timers (lab.nemesis.proxy does). Effects are in simulated
units; the injected clock converts them. time.monotonic schedules the bytes.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import os
import random
import selectors
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from ecgcore.clock import Clock
from lab.nemesis.faults import BLACKHOLE, CUT, HEALTHY, Effect
from lab.nemesis.proxyflow import Conn, Flow, Upstream

CHUNK = 65536
HIGH_WATER = 256 * 1024  # stop reading a source while this much waits to be written on
ACCEPT_PAUSE_S = 0.1  # after a failed accept (out of file descriptors), before trying again
CONNECT_TIMEOUT_S = 1.0  # real seconds an upstream has to accept before the next one is tried
UP, DOWN = "upstream", "downstream"
CONNECT = "connect"  # the timer kind of an upstream connect's deadline


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Forwarder:
    def __init__(self, listen: tuple[str, int], upstreams: Sequence[tuple[str, int]], clock: Clock,
                 rng: random.Random | None = None, log: Callable[[str], None] = print) -> None:
        self.upstreams = [Upstream(host, port) for host, port in upstreams]  # at least one
        self.next_upstream = 0  # round-robin: where the next accepted connection starts
        self.clock, self.log = clock, log
        self.rng = rng or random.Random(0)
        self.effect: Effect = HEALTHY
        self.sel = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(listen)
            self.listener.listen(4096)
        except OSError:
            self.listener.close()
            raise
        self.listener.setblocking(False)
        self.listen_addr: tuple[str, int] = self.listener.getsockname()
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.conns: dict[int, Conn] = {}
        self.ids = itertools.count(1)
        self.timers: list[tuple[float, int, Conn, str]] = []
        self.timer_ids = itertools.count()
        self.counters: dict[str, Any] = {
            "accepted": 0, "refused": 0, "reset": 0, "upstream_failed": 0,
            "forwarded": {UP: 0, DOWN: 0}, "dropped": {UP: 0, DOWN: 0}}
        self.dirty = True  # counters changed since the owner last looked
        self.accept_paused_until: float | None = None

    def step(self, timeout: float) -> None:
        """Wait up to `timeout` real seconds for sockets, handle what is ready, run due timers."""
        for key, mask in self.sel.select(timeout):
            if key.data is None:
                self._accept()
            else:
                conn, side = key.data
                if conn.id in self.conns and conn.sock(side) is key.fileobj:
                    self._on_event(conn, side, mask)
        self._run_timers()
        if self.accept_paused_until is not None and time.monotonic() >= self.accept_paused_until:
            self.accept_paused_until = None
            self.sel.register(self.listener, selectors.EVENT_READ, None)

    def next_timer(self) -> float | None:
        times = [t for t in (self.timers[0][0] if self.timers else None, self.accept_paused_until)
                 if t is not None]
        return min(times) if times else None

    def close(self) -> None:
        """Close every connection (FIN) and the listener."""
        for conn in list(self.conns.values()):
            self._close_side(conn, "client")
            self._close_side(conn, "upstream")
        if self.accept_paused_until is None:
            self.sel.unregister(self.listener)
        self.listener.close()
        self.sel.close()

    def _rate(self) -> float | None:
        """The bandwidth cap in bytes per real second."""
        bw = self.effect.bandwidth_bytes_s
        return None if bw is None else bw * self.clock.speed

    def _delay(self) -> float:
        e = self.effect
        if not e.latency_s and not e.jitter_s:
            return 0.0
        sim = e.latency_s + (self.rng.uniform(-e.jitter_s, e.jitter_s) if e.jitter_s else 0.0)
        return self.clock.to_wall(max(0.0, sim))

    # ---------------------------------------------------------------- connections
    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: leave it in the backlog and pause accepting
                self.log(f"accept failed: {exc}; not accepting for {ACCEPT_PAUSE_S} s")
                self.sel.unregister(self.listener)
                self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE_S
                return
            self.counters["accepted"] += 1
            self.dirty = True
            if self.effect.mode == CUT:
                self.counters["refused"] += 1
                _reset(client)
                continue
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            now = time.monotonic()
            conn = Conn(next(self.ids), client, None, False, Flow(now), Flow(now))
            self.conns[conn.id] = conn
            if self.effect.mode == BLACKHOLE:
                conn.poisoned = True  # the SYN never got through: no upstream, reset on heal
            else:
                conn.start = self.next_upstream
                self.next_upstream = (self.next_upstream + 1) % len(self.upstreams)
                self._connect_upstream(conn)
            self._update(conn)

    def _connect_upstream(self, conn: Conn) -> None:
        """Start connecting to the next upstream this connection has not tried; an address that
        refuses at once is skipped. With none left the client is reset (`upstream_failed`)."""
        while conn.tried < len(self.upstreams):
            index = (conn.start + conn.tried) % len(self.upstreams)
            conn.tried += 1
            try:
                up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:  # out of file descriptors: another upstream will not help
                self.log(f"no upstream socket: {exc}")
                break
            up.setblocking(False)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rc = up.connect_ex(self.upstreams[index].addr)
            if rc not in (0, errno.EINPROGRESS):
                up.close()
                self._upstream_failed(index, os.strerror(rc))
                continue
            conn.upstream, conn.target = up, index
            if rc == 0:
                self._established(conn)
            else:
                conn.connecting, conn.connect_by = True, time.monotonic() + CONNECT_TIMEOUT_S
                heapq.heappush(self.timers, (conn.connect_by, next(self.timer_ids), conn, CONNECT))
            return
        self.counters["upstream_failed"] += 1
        self._abort(conn)

    def _upstream_failed(self, index: int, error: str) -> None:
        if self.upstreams[index].failed(self.clock.now(), error):
            self.log(f"upstream {self.upstreams[index].where} failed: {error}")
        self.dirty = True

    def _connect_failed(self, conn: Conn, error: str) -> None:
        """The pending connect was refused or timed out: try the next upstream; the client waits."""
        if conn.target is not None:
            self._upstream_failed(conn.target, error)
        self._close_side(conn, "upstream")
        if conn.id in self.conns:  # the client is still there
            self._connect_upstream(conn)
            self._update(conn)

    def _established(self, conn: Conn) -> None:
        conn.connecting, conn.connect_by = False, None
        if conn.target is not None and self.upstreams[conn.target].established():
            self.log(f"upstream {self.upstreams[conn.target].where} accepts again")
        self.dirty = True

    def _close_side(self, conn: Conn, side: str, rst: bool = False) -> None:
        sock = conn.sock(side)
        if sock is None:
            return
        fd = sock.fileno()
        if conn.masks.pop(fd, 0):
            self.sel.unregister(sock)
        (_reset if rst else socket.socket.close)(sock)
        if side == "client":
            conn.client = None
        else:
            if not conn.connecting and conn.target is not None:
                self.upstreams[conn.target].open -= 1
            conn.upstream, conn.connecting, conn.target = None, False, None
        if conn.client is None and conn.upstream is None:
            self.conns.pop(conn.id, None)
        self.dirty = True

    def _abort(self, conn: Conn) -> None:
        """Reset both ends; whatever was buffered is dropped."""
        self.counters["dropped"][UP] += conn.up.drop_all()
        self.counters["dropped"][DOWN] += conn.down.drop_all()
        self._close_side(conn, "client", rst=True)
        self._close_side(conn, "upstream", rst=True)

    def _update(self, conn: Conn) -> None:
        """Register each socket for what it should wait for now."""
        for side in ("client", "upstream"):
            sock = conn.sock(side)
            if sock is None:
                continue
            mask = 0
            if side == "upstream" and conn.connecting:
                mask = selectors.EVENT_WRITE
            else:
                src = conn.flow_from(side)
                blackholed = self.effect.mode == BLACKHOLE
                if not src.eof and (blackholed or src.buffered() < HIGH_WATER):
                    mask |= selectors.EVENT_READ
                if conn.flow_to(side).want_write and not blackholed:
                    mask |= selectors.EVENT_WRITE
            fd = sock.fileno()
            old = conn.masks.get(fd, 0)
            if mask == old:
                continue
            if not old:
                self.sel.register(sock, mask, (conn, side))
            elif not mask:
                self.sel.unregister(sock)
            else:
                self.sel.modify(sock, mask, (conn, side))
            conn.masks[fd] = mask

    def _on_event(self, conn: Conn, side: str, mask: int) -> None:
        if side == "upstream" and conn.connecting:
            if conn.upstream is None:  # closed by an earlier event of this same step
                return
            err = conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._connect_failed(conn, os.strerror(err))
                return
            self._established(conn)
            self._pump(conn, UP)
            self._update(conn)
            return
        if mask & selectors.EVENT_WRITE:
            self._pump(conn, DOWN if side == "client" else UP)
        if mask & selectors.EVENT_READ and conn.id in self.conns:
            self._read(conn, side)
        if conn.id in self.conns:
            self._update(conn)

    def _read(self, conn: Conn, side: str) -> None:
        sock = conn.sock(side)
        if sock is None:
            return
        direction = UP if side == "client" else DOWN
        try:
            data = sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the peer: pass the reset on (a blackhole swallows it)
            if self.effect.mode == BLACKHOLE:
                self._close_side(conn, side, rst=True)
            else:
                self._abort(conn)
            return
        flow = conn.flow_from(side)
        if not data:
            if self.effect.mode == BLACKHOLE:
                self._close_side(conn, side)
                return
            flow.eof = True
            self._pump(conn, direction)
            return
        self.dirty = True
        if self.effect.mode == BLACKHOLE:
            self.counters["dropped"][direction] += len(data)
            conn.poisoned = True
            return
        flow.push(time.monotonic(), data, self._delay())
        self._pump(conn, direction)

    def _pump(self, conn: Conn, direction: str) -> None:
        """Move what is due from `direction`'s flow onto its destination socket."""
        flow = conn.up if direction == UP else conn.down
        dst_side = "upstream" if direction == UP else "client"
        dst = conn.sock(dst_side)
        if dst is None or (dst_side == "upstream" and conn.connecting) or self.effect.mode == BLACKHOLE:
            return
        now = time.monotonic()
        rate = self._rate()
        flow.release_due(now)
        n = flow.allowance(now, rate)
        sent = 0
        if n:
            try:
                sent = dst.send(flow.out[:n])
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._abort(conn)
                return
            flow.sent(sent, rate)
            self.counters["forwarded"][direction] += sent
            self.dirty = True
        flow.want_write = sent < n
        if flow.eof and not flow.buffered():
            self._finish(conn, dst_side)
            return
        wake = flow.next_wakeup(now, rate)
        if wake is not None and not flow.want_write and (flow.timer_at is None or wake < flow.timer_at):
            flow.timer_at = wake
            heapq.heappush(self.timers, (wake, next(self.timer_ids), conn, direction))

    def _finish(self, conn: Conn, dst_side: str) -> None:
        """The source sent FIN and all its bytes are written: pass the FIN on."""
        dst = conn.sock(dst_side)
        if dst is not None:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
        if conn.up.eof and conn.down.eof:
            self._close_side(conn, "client")
            self._close_side(conn, "upstream")

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, conn, direction = heapq.heappop(self.timers)
            if direction == CONNECT:  # a connect's deadline; stale unless that connect still waits
                if conn.id in self.conns and conn.connecting and (conn.connect_by or now) <= now:
                    self._connect_failed(conn, f"no answer within {CONNECT_TIMEOUT_S:g} s")
                continue
            flow = conn.up if direction == UP else conn.down
            flow.timer_at = None
            if conn.id in self.conns:
                self._pump(conn, direction)
                if conn.id in self.conns:
                    self._update(conn)

    def transition(self, new: Effect) -> dict[str, Any]:
        """Change from the current effect to `new`; what it did to existing connections."""
        old, self.effect = self.effect, new
        did = {"reset": 0, "dropped_bytes": 0}
        now = time.monotonic()
        for conn in list(self.conns.values()):
            if new.mode == CUT:
                did["dropped_bytes"] += conn.up.buffered() + conn.down.buffered()
                self._abort(conn)
                did["reset"] += 1
                continue
            if new.mode == BLACKHOLE:
                for flow, direction in ((conn.up, UP), (conn.down, DOWN)):
                    n = flow.drop_all()
                    self.counters["dropped"][direction] += n
                    did["dropped_bytes"] += n
                    conn.poisoned = conn.poisoned or n > 0
                    flow.want_write = False
                self._update(conn)
                continue
            if old.mode == BLACKHOLE and (conn.poisoned or conn.client is None or conn.upstream is None):
                self._abort(conn)  # its bytes were lost mid-stream: it cannot carry MQTT any more
                did["reset"] += 1
                continue
            for flow, direction in ((conn.up, UP), (conn.down, DOWN)):
                if not new.latency_s and not new.jitter_s:
                    flow.release_all()
                flow.reset_bucket(now)
                self._pump(conn, direction)
            if conn.id in self.conns:
                self._update(conn)
        self.counters["reset"] += did["reset"]
        self.dirty = True
        return did
