"""Strip mode against a real Mosquitto, under time compression (--speed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devices.schedule import StripSchedule
from ecgcore.clock import ScaledClock
from ecgcore.files import read_jsonl
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from tests.devices.conftest import Collector, fleet_config, running_fleet
from tests.devices.test_fleet_process import all_online
from wire import Reading

pytestmark = pytest.mark.broker
SPEED = 3600.0  # an hour a second
PER_DAY = 48  # a strip every half hour: one every half wall second per device


def strips_of(readings: list[Reading]) -> dict[int, list[Reading]]:
    out: dict[int, list[Reading]] = {}
    for r in sorted(readings, key=lambda r: r.seq):
        out.setdefault(r.strip_id, []).append(r)
    return out


@pytest.mark.parametrize("chunks", [1, 3])
def test_hours_of_strips_in_a_few_wall_seconds(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector], chunks: int,
) -> None:
    sub = collector(broker, unique("sub"), "heartcheck/+/ecg")
    cfg = fleet_config(tmp_path, broker, unique("hc"), devices=3, delivery="broker-ack",
                       speed=SPEED, recording="strip", strips_per_day=PER_DAY,
                       strip_chunks=chunks)

    def complete_strips() -> dict[str, int]:
        return {d: sum(1 for parts in strips_of(rs).values() if len(parts) == chunks)
                for d, rs in sub.by_device().items()}

    wall0 = time.monotonic()
    with running_fleet(cfg) as fleet:
        wait_until(lambda: len(c := complete_strips()) == 3 and min(c.values()) >= 6, 20,
                   what="6 strips per device")
        reached_at = fleet.clock.now()
        profiles = {d.device_id: d.profile for d in fleet.devices}
    stopped_at = fleet.clock.now()
    wall = time.monotonic() - wall0
    boots = {e["dev"]: e["t"] for e in read_jsonl(cfg.history_path) if e["ev"] == "boot"}
    for device_id, rs in sub.by_device().items():
        strips = strips_of(rs)
        sched = StripSchedule(profiles[device_id].seed, PER_DAY, 30.0)
        expected = sched.starts_between(boots[device_id], stopped_at)
        starts = [parts[0].captured_at for parts in strips.values()]
        # the strips that arrived are the schedule's, in order, from the boot on
        assert starts == pytest.approx(expected[:len(starts)], abs=1e-6), device_id
        # and every strip that ended half a wall second (a slot or so) before we had seen
        # enough of them
        due = [s for s in expected if s + 30 <= reached_at - 0.5 * SPEED]
        assert len(starts) >= len(due) >= 3, (device_id, starts, expected)
        # timestamps follow simulated time: hours of strips in a few wall seconds
        slot = 86_400 / PER_DAY
        assert starts[-1] - starts[0] >= (len(starts) - 2) * slot >= 4 * slot
        for strip_id, parts in strips.items():
            if len(parts) < chunks:
                continue  # the last one may be cut by the stop
            assert [r.chunk for r in parts] == list(range(chunks))
            assert [r.seq for r in parts] == list(range(strip_id - 1, strip_id - 1 + chunks))
            assert sum(r.samples.size for r in parts) == 30 * 250
            assert all(r.sample_rate_hz == 250 and r.chunks == chunks for r in parts)
    assert wall < 20


def test_an_idle_strip_fleet_sleeps(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
) -> None:
    """No strip is due for hours: the loop wakes only for paho's keepalive pass and
    devices.json, about once a second each, and never ticks."""
    cfg = fleet_config(tmp_path, broker, unique("hc"), devices=3, delivery="broker-ack",
                       recording="strip", strips_per_day=1)
    with running_fleet(cfg) as fleet:
        wait_until(lambda: fleet.hub.online == 3, 10, what="online")
        soon = fleet.clock.monotonic() + 10.0
        if any(d.next_due < soon for d in fleet.devices):
            pytest.skip("a strip happens to be due within the next seconds")
        seen = [-1]

        def settled() -> bool:
            same, seen[0] = fleet.ticks == seen[0], fleet.ticks
            return same

        wait_until(settled, 5, interval=0.3,
                   what="the startup ticks (connects, status PUBACKs) to settle")
        steps, ticks, t0 = fleet.steps, fleet.ticks, time.monotonic()
        wait_until(lambda: time.monotonic() - t0 >= 2.0, 5, what="two idle seconds")
        idle_steps, idle_ticks = fleet.steps - steps, fleet.ticks - ticks
    assert idle_ticks == 0
    assert idle_steps <= 8  # continuous mode would take 20 ticks in 2 s


def test_network_timers_run_while_the_simulated_clock_stands_still(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
) -> None:
    """A lab's shared clock stands still until its anchor (ecgcore.clock.ScaledClock). The
    devices must still connect, say so in devices.json, and keep their connections alive:
    with a 3-s keepalive the broker drops a client that sends nothing for 4.5 s, and
    nothing but paho's PINGREQs (loop_misc, once a real second) is sent while no time
    passes."""
    cfg = fleet_config(tmp_path, broker, unique("hc"), devices=2, delivery="broker-ack",
                       speed=3600, keepalive=3)
    frozen = ScaledClock(speed=3600, anchor=time.time() + 3600)
    with running_fleet(cfg, clock=frozen) as fleet:
        wait_until(lambda: all_online(cfg.devices_json, 2), 10, what="online in devices.json")
        t0 = time.monotonic()
        wait_until(lambda: time.monotonic() - t0 >= 6.0, 10, what="6 s of standing still")
        assert all(link.online and link.reconnects == 0 for link in fleet.hub.links)
        assert all(d.stats.generated == 0 for d in fleet.devices)  # nothing recorded yet
