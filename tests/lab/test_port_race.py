"""`up` picks free ports, but a port is only free until someone binds it: another stack
starting at the same moment (parallel test workers, a scenario pool) may take it first. Seen
in CI: "proxy devices: cannot listen on 127.0.0.1:43621: [Errno 98] Address already in use".
`up` then tries again with other ports (lab/stack/control.py, PORT_ATTEMPTS)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.stack import control
from lab.stack.ports import free_port
from lab.stack.statedir import StackConfig, StateDir

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_a_port_taken_between_picking_and_binding_is_picked_again(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as thief:
        thief.bind(("127.0.0.1", 0))
        thief.listen()
        taken = thief.getsockname()[1]

        def picks() -> Iterator[int]:
            yield free_port()  # the broker's
            yield free_port()  # the ingest link's proxy
            yield taken  # the devices link's proxy: bound by someone else meanwhile
            while True:
                yield free_port()

        seq = picks()
        monkeypatch.setattr(control, "free_port", lambda _host="127.0.0.1": next(seq))
        said: list[str] = []
        sd = StateDir(tmp_path / "stack")
        cfg = control.up(sd, StackConfig(devices=1, analysis=False), progress=said.append)
        try:
            assert cfg.proxy_devices_port != taken
            assert any("taken meanwhile; trying other ports" in line for line in said), said
            assert sd.config().proxy_devices_port == cfg.proxy_devices_port
        finally:
            control.down(sd)
