from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from devices.mqtt_adapter import JitterBackoff, MqttHub
from devices.outbox_view import device_summaries
from ecgcore.clock import ManualClock
from lab.stack.broker import BrokerSettings, RunningBroker
from lab.stack.ports import free_port
from tests.conftest import wait_until
from tests.devices.conftest import fleet_config, running_fleet


def test_backoff_is_exponential_with_equal_jitter_and_a_cap() -> None:
    b = JitterBackoff(base=0.5, cap=30.0)
    rng = np.random.default_rng(1)
    for attempt in range(12):
        d = min(30.0, 0.5 * 2**attempt)
        delays = [b.delay(attempt, rng) for _ in range(200)]
        assert all(d / 2 <= x <= d for x in delays)
        assert max(delays) - min(delays) > d / 4  # really jittered
    assert b.delay(10_000, rng) <= 30.0
    same = [JitterBackoff().delay(3, np.random.default_rng(5)) for _ in range(2)]
    assert same[0] == same[1]  # the injected generator makes it reproducible


@pytest.mark.broker
def test_a_fleet_started_before_its_broker_connects_when_it_comes_up(
    tmp_path: Path, unique: Callable[[str], str],
) -> None:
    port = free_port()
    root = tmp_path / "late-broker"
    late = RunningBroker(BrokerSettings(port=port, data_dir=root / "data",
                                        log_file=root / "mosquitto.log"), root / "mosquitto.conf")
    cfg = fleet_config(tmp_path, late, unique("hc"), devices=3, delivery="broker-ack")
    try:
        with running_fleet(cfg) as fleet:
            # connect() raises ConnectionRefusedError: caught, retried with backoff
            wait_until(lambda: all(link.refused >= 3 for link in fleet.hub.links), 15,
                       what="three refused attempts per device")
            assert fleet.hub.online == 0
            assert all("ConnectionRefusedError" in link.last_error for link in fleet.hub.links)
            wait_until(lambda: all(s["buffered"] >= 3 for s in device_summaries(cfg.outbox_path)),
                       10, what="readings buffered while the broker is down")
            late.start()
            wait_until(lambda: fleet.hub.online == 3, 30, what="all devices connected")
            wait_until(lambda: all(s["buffered"] <= 2 for s in device_summaries(cfg.outbox_path)),
                       10, what="the backlog drained")
            assert all(link.attempt == 0 for link in fleet.hub.links)  # reset on success
            assert all(d.stats.published_backlog >= 3 for d in fleet.devices)
    finally:
        late.stop()


def test_network_timers_run_on_the_real_clock_not_the_simulated_one() -> None:
    """The backoff and the keepalive pass are real seconds: they move with `real_clock`
    while the simulated clock is compressed 100x and even stands still."""
    sim = ManualClock(speed=100.0)  # never advanced: a lab clock before its anchor
    real = [1000.0]
    hub = MqttHub("127.0.0.1", free_port(), sim, np.random.default_rng(0),
                  real_clock=lambda: real[0])
    try:
        link = hub.add("hc-0000", boot_epoch=1)
        hub.service()  # the first attempt is due at once; nothing listens on the port
        assert link.refused == 1 and "ConnectionRefusedError" in link.last_error
        assert 0.25 <= link.next_attempt - 1000.0 <= 0.5  # attempt 0: 0.5 s, equal jitter
        assert hub.next_deadline() <= 1000.0 + 0.5  # the retry, then loop_misc at +1 s
        real[0] += 0.5
        hub.service()  # simulated time has not moved; real time has
        assert link.refused == 2 and 0.5 <= link.next_attempt - real[0] <= 1.0
    finally:
        hub.close()
