"""One direction of one proxied connection: the bytes between reading them and writing them on.

    read ──► push(now, chunk, delay) ──► queue (release_at, chunk) ──► release_due(now) ──► out
                                                                                           │
                      send(out[:allowance(now, rate)]) ◄── token bucket (bytes/s) ◄────────┘

A chunk is released at `now + delay`, but never before the chunk read ahead of it: order
within a connection holds whatever the jitter. The token bucket starts empty and holds at
most `burst_bytes(rate)`, so n bytes take at least (n − burst) / rate seconds.

Times are real seconds (time.monotonic); the proxy converts simulated durations before
calling in. Nothing here touches a socket, so it is tested with plain numbers.

`Conn` (one proxied connection: its two sockets and two flows) and `Upstream` (one of the
upstream addresses the proxy spreads connections over, round-robin, and what happened on it)
are the rest of the proxy's plain data; lab.nemesis.proxynet does the socket work.
"""

from __future__ import annotations

import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

BURST_S = 0.02  # the bucket holds this many seconds' worth of bytes ...
MIN_BURST = 256  # ... but at least this many, so slow links do not send byte by byte


def burst_bytes(rate: float) -> float:
    return max(rate * BURST_S, float(MIN_BURST))


class Flow:
    def __init__(self, now: float) -> None:
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.out = bytearray()
        self.last_release = now
        self.tokens = 0.0
        self.tokens_at = now
        self.eof = False  # the source sent FIN; pass it on once everything is written
        self.want_write = False  # the destination socket was full at the last send
        self.timer_at: float | None = None  # the proxy's pending wake-up for this flow

    def buffered(self) -> int:
        return self.queued + len(self.out)

    def push(self, now: float, chunk: bytes, delay: float = 0.0) -> None:
        if delay <= 0 and not self.queue:
            self.out += chunk
            self.last_release = max(self.last_release, now)
            return
        release = max(now + max(delay, 0.0), self.last_release)
        self.last_release = release
        self.queue.append((release, chunk))
        self.queued += len(chunk)

    def release_due(self, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            _, chunk = self.queue.popleft()
            self.queued -= len(chunk)
            self.out += chunk

    def release_all(self) -> None:
        """Heal: whatever still waits for its delay may go now (in order)."""
        while self.queue:
            self.out += self.queue.popleft()[1]
        self.queued = 0

    def drop_all(self) -> int:
        n = self.buffered()
        self.queue.clear()
        self.queued = 0
        self.out.clear()
        return n

    def reset_bucket(self, now: float) -> None:
        self.tokens, self.tokens_at = 0.0, now

    def allowance(self, now: float, rate: float | None) -> int:
        """How many bytes of `out` may be sent now."""
        if rate is None:
            return len(self.out)
        cap = burst_bytes(rate)
        self.tokens = min(cap, self.tokens + (now - self.tokens_at) * rate)
        self.tokens_at = now
        return min(len(self.out), int(self.tokens))

    def sent(self, n: int, rate: float | None) -> None:
        del self.out[:n]
        if rate is not None:
            self.tokens -= n

    def next_wakeup(self, now: float, rate: float | None) -> float | None:
        """When this flow can next make progress on its own (not counting a full socket)."""
        times = []
        if self.queue:
            times.append(self.queue[0][0])
        if self.out and rate is not None:
            need = min(len(self.out), burst_bytes(rate)) - self.tokens
            times.append(now + max(need, 0.0) / rate)
        return min(times) if times else None


def parse_hostport(text: str) -> tuple[str, int]:
    """"HOST:PORT" → (host, port); ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)


@dataclass(eq=False)
class Upstream:
    """One upstream address and its counters (the proxy's state file shows them)."""
    host: str
    port: int
    open: int = 0  # connections established to it and still open
    connected: int = 0  # connections established to it, ever
    failures: int = 0  # connect attempts refused, failed or timed out
    last_failure: dict[str, Any] | None = None  # {"at": clock time, "error": why}
    failing: bool = False  # its last connect attempt failed

    @property
    def addr(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def established(self) -> bool:
        """Count a connection established to it; True if it had been failing until now."""
        was, self.failing = self.failing, False
        self.open += 1
        self.connected += 1
        return was

    def failed(self, at: float, error: str) -> bool:
        """Count a failed connect; True if it had not been failing until now."""
        was, self.failing = self.failing, True
        self.failures += 1
        self.last_failure = {"at": round(at, 3), "error": error}
        return not was

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "open": self.open, "connected": self.connected,
                "failures": self.failures, "failing": self.failing,
                "last_failure": self.last_failure}


@dataclass(eq=False)
class Conn:
    id: int
    client: socket.socket | None
    upstream: socket.socket | None
    connecting: bool
    up: Flow  # client → upstream
    down: Flow  # upstream → client
    poisoned: bool = False  # bytes were dropped: the byte streams are no longer valid
    start: int = 0  # the upstream index its round-robin turn began at
    tried: int = 0  # upstreams tried so far (from start on)
    target: int | None = None  # the upstream index it is connected or connecting to
    connect_by: float | None = None  # monotonic deadline of the pending connect
    masks: dict[int, int] = field(default_factory=dict)  # fd → registered selector events

    def sock(self, side: str) -> socket.socket | None:
        return self.client if side == "client" else self.upstream

    def flow_from(self, side: str) -> Flow:
        return self.up if side == "client" else self.down

    def flow_to(self, side: str) -> Flow:
        return self.down if side == "client" else self.up
