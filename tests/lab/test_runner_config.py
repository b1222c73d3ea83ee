"""What a scenario's fleet settings become on the fleet's command line (no processes)."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from devices.__main__ import parse_config
from lab.scenario import parse_scenario
from lab.scenario.config import cohort_specs, real_keepalive, stack_config, with_chunk, with_devices
from lab.stack.control import component_argv
from lab.stack.statedir import StateDir

SCENARIO = textwrap.dedent('''\
    description = "profiles and herd settings reach the fleet"
    duration = "1h"
    seed = 3
    expect = ["lost = 0"]

    [fleet]
    devices = 20
    recording = "strip"
    strips_per_day = 4
    keepalive = "30s"
    reconnect_backoff = "none"
    backlog_pace = 3

    [[fleet.profiles]]
    name = "resting"
    devices = 15
    hr_bpm = [55, 75]

    [[fleet.profiles]]
    name = "tachy"
    devices = 5
    hr_bpm = 120
    strips_per_day = 12
    ''')


def test_the_scenario_fleet_reaches_the_fleet_process(tmp_path: Path) -> None:
    scn = parse_scenario(SCENARIO)
    var = scn.variant()
    cfg = replace(stack_config(scn, var, speed=10.0), port=20001, proxy_devices_port=20002)
    assert cfg.cohorts == ("resting:15:hr=55-75", "tachy:5:hr=120-120:strips=12")
    assert (cfg.keepalive, cfg.reconnect_backoff, cfg.backlog_pace) == (3, "none", 3.0)
    argv = component_argv(StateDir(tmp_path), cfg, "devices")
    fleet = parse_config(argv[argv.index("devices") + 1:])  # what `python -m devices` would run
    assert (fleet.keepalive, fleet.reconnect_backoff, fleet.backlog_pace) == (3, "none", 3.0)
    assert [(c.name, c.devices, c.hr_bpm, c.strips_per_day) for c in fleet.cohorts] == [
        ("resting", 15, (55.0, 75.0), None), ("tachy", 5, (120.0, 120.0), 12)]
    assert fleet.device.backlog_pace == 3.0


def test_a_smaller_fleet_keeps_its_profiles_in_proportion() -> None:
    scn = parse_scenario(SCENARIO)
    var = with_devices(scn.variant(), 8)
    assert cohort_specs(var.fleet) == ("resting:6:hr=55-75", "tachy:2:hr=120-120:strips=12")


@pytest.mark.parametrize(("keepalive", "speed", "real"), [
    (None, 1.0, 10), (None, 500.0, 10),  # unset: the fleet's 10 real seconds, never scaled
    (30.0, 1.0, 30), (30.0, 10.0, 3), (30.0, 20.0, 2), (30.0, 1000.0, 2),  # floor of 2 s
])
def test_a_scenario_keepalive_is_simulated_time(keepalive: float | None, speed: float, real: int) -> None:
    assert real_keepalive(keepalive, speed) == real


def test_longer_chunks_keep_the_backlog_pace_in_seconds_of_ecg() -> None:
    scn = parse_scenario(SCENARIO.replace('recording = "strip"\nstrips_per_day = 4\n', "")
                         .replace("strips_per_day = 12\n", ""))
    var = with_chunk(scn.variant(), 4.0)
    assert (var.fleet.chunk, var.fleet.backlog_pace) == (4.0, 0.75)


@pytest.mark.parametrize(("speed", "cap"), [(1.0, 30.0), (10.0, 3.0), (20.0, 2.0), (2304.0, 2.0)])
def test_the_reconnect_backoff_cap_is_30_simulated_seconds(speed: float, cap: float) -> None:
    from lab.scenario.config import real_backoff_cap

    assert real_backoff_cap(speed) == cap
    scn = parse_scenario(SCENARIO)
    assert stack_config(scn, scn.variant(), speed).backoff_cap == cap
