"""The lab broker starts from broker_config/ and applies its overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from lab.stack.broker import BrokerSettings, RunningBroker, render_config
from tests.conftest import wait_until


def test_render_overrides_only_lab_directives(tmp_path: Path) -> None:
    s = BrokerSettings(port=12345, data_dir=tmp_path / "d", log_file=tmp_path / "l.log", max_queued=77,
                       persistence=False)
    text = render_config(s)
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert "listener 12345 127.0.0.1" in lines
    assert "max_queued_messages 77" in lines
    assert "persistence false" in lines
    assert f"persistence_location {tmp_path / 'd'}/" in lines
    assert "sys_interval 1" in lines
    assert sum(1 for ln in lines if ln.startswith("listener")) == 1


def test_every_directive_has_a_comment_above_it() -> None:
    from lab.stack.broker import CONFIG_TEMPLATE

    lines = CONFIG_TEMPLATE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            j = i - 1
            while j >= 0 and lines[j] and not lines[j].startswith("#"):
                j -= 1  # a block of related directives shares one comment
            assert j >= 0 and lines[j].startswith("#"), f"no comment above {line!r}"


@pytest.mark.broker
def test_real_broker_accepts_clients_and_publishes_sys(broker: RunningBroker,
                                                       unique: Callable[[str], str]) -> None:
    got: list[str] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique("t"))
    c.on_message = lambda _cl, _ud, msg: got.append(msg.topic)
    c.on_connect = lambda cl, _ud, _fl, _rc, _pr: cl.subscribe("$SYS/broker/publish/messages/dropped")
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        wait_until(lambda: got, timeout=10, what="$SYS dropped counter")
    finally:
        c.loop_stop()
        c.disconnect()
    assert got[0] == "$SYS/broker/publish/messages/dropped"
