"""Free TCP ports on loopback."""

from __future__ import annotations

import socket
from collections.abc import Callable

from ecgcore.waiting import wait_until


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, deadline_s: float,
              alive: Callable[[], bool] = lambda: True) -> bool:
    """Wait until something accepts on host:port, or the deadline passes, or alive() is False."""
    return wait_until(lambda: port_open(host, port), deadline_s, give_up=lambda: not alive())
