"""Framing for the scripted MQTT brokers of protocol-level unit tests (a broker that refuses
what Mosquitto 2.0.11 never refuses): read one packet off a socket."""

from __future__ import annotations

import socket


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
