"""A scripted MQTT broker for protocol-level unit tests: one that refuses SUBSCRIBEs, which
Mosquitto 2.0.11 never does (a NATS node does, under load). It speaks only the framing those
tests need: CONNACK, PUBACK for QoS 1, SUBACK (MQTT 3.1.1, or 5 with empty properties)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

REFUSED_311 = 0x80  # MQTT 3.1.1's one failure code
REFUSED_5 = 0x87  # MQTT 5: not authorized
GRANTED_QOS1 = 0x01


def read_packet(conn: socket.socket) -> tuple[int, bytes] | None:
    """(first byte, body) of the next packet, or None when the peer closed."""
    head = conn.recv(1)
    if not head:
        return None
    length, shift = 0, 0
    while True:
        b = conn.recv(1)
        if not b:
            return None
        length |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return head[0], body


def _filters(body: bytes, v5: bool) -> int:
    """How many topic filters a SUBSCRIBE body holds (MQTT 5: properties assumed empty)."""
    n, i = 0, 3 if v5 else 2
    while i < len(body):
        i += 2 + int.from_bytes(body[i:i + 2], "big") + 1
        n += 1
    return n


class ScriptedBroker:
    """Accepts on a free loopback port. `refuse(connection, subscribe)` (both counted from 1)
    says whether that SUBSCRIBE is refused; `silent`: a refused one gets no SUBACK at all.
    `subacks` records each SUBSCRIBE's code (also the unanswered ones), in order."""

    def __init__(self, refuse: Callable[[int, int], bool], *, v5: bool = False,
                 silent: bool = False) -> None:
        self.refuse, self.v5, self.silent = refuse, v5, silent
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.connections = 0
        self.subacks: list[int] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn:
            try:
                while (packet := read_packet(conn)) is not None:
                    reply = self._reply(packet[0], packet[1], number)
                    if reply:
                        conn.sendall(reply)
            except OSError:
                return

    def _reply(self, first: int, body: bytes, number: int) -> bytes | None:
        kind = first >> 4
        if kind == 1:  # CONNECT: accepted, no session (MQTT 5: and no properties)
            return bytes([0x20, 3, 0, 0, 0]) if self.v5 else bytes([0x20, 2, 0, 0])
        if kind == 3 and (first >> 1) & 3:  # PUBLISH at QoS 1: PUBACK its packet id
            topic_len = int.from_bytes(body[:2], "big")
            return bytes([0x40, 2]) + body[2 + topic_len:4 + topic_len]
        if kind != 8:  # SUBSCRIBE only, below
            return None
        with self.lock:
            refused = self.refuse(number, len(self.subacks) + 1)
            code = (REFUSED_5 if self.v5 else REFUSED_311) if refused else GRANTED_QOS1
            self.subacks.append(code)
        if refused and self.silent:
            return None
        codes = bytes([code] * _filters(body, self.v5))
        head = body[:2] + (b"\x00" if self.v5 else b"")  # packet id (MQTT 5: empty properties)
        return bytes([0x90, len(head) + len(codes)]) + head + codes

    def close(self) -> None:
        self.server.close()
