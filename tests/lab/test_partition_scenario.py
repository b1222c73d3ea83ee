"""A partition in a scenario file (kind = "partition", target nats-K or nats-leader): what the
model accepts and refuses, and the plan's steps (the runner sends them to lab.nemesis.partition).
The fault tracker records a fault over several links once, under the name it was given."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from ecgcore.clock import ManualClock
from lab.nemesis.faults import LinkFault
from lab.nemesis.tracker import FaultTracker
from lab.scenario import ScenarioError, parse_scenario, plan

BASE = textwrap.dedent('''\
    description = "a partition"
    duration = "10m"
    seed = 1

    [fleet]
    devices = 2

    [broker]
    kind = "{kind}"

    [[faults]]
    id = "cut-off"
    kind = "partition"
    target = "{target}"
    start = "2m"
    end = "5m"

    [[variants]]
    name = "only"
    expect = ["lost = 0"]
''')


def test_a_partition_of_a_node_or_the_leader_plans_a_cut_and_a_heal() -> None:
    for target in ("nats-2", "nats-leader"):
        scn = parse_scenario(BASE.format(kind="nats-cluster", target=target), "p.toml")
        (fault,) = scn.faults
        assert (fault.kind, fault.target, fault.layer) == ("partition", target, "network")
        steps = [(s.at, s.action, s.event, s.target) for s in plan(scn, speed=10.0)]
        assert steps[:2] == [(120.0, "partition", "fault_start", target),
                             (300.0, "heal-partition", "fault_end", target)], steps


@pytest.mark.parametrize(("kind", "target", "words"), [
    ("nats-cluster", "ingest", "partition needs a NATS node target: one of 'nats-1'"),
    ("nats-cluster", "nats-4", "not 'nats-4'"),
    ("mosquitto", "nats-2", 'set kind = "nats-cluster"'),
])
def test_a_partition_needs_a_node_of_a_cluster(kind: str, target: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(BASE.format(kind=kind, target=target), "p.toml")
    assert words in str(info.value), str(info.value)
    assert str(info.value).startswith("p.toml, line "), str(info.value)


class Log:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def test_a_fault_over_two_links_is_recorded_once_under_its_own_name() -> None:
    clock = ManualClock(1000.0)
    log = Log()
    first, second = FaultTracker("route-1-2", clock, log), FaultTracker("route-2-3", clock, log)
    for tracker, records in ((first, True), (second, False)):
        tracker.apply(LinkFault("cut", seq=1, for_s=30.0, record_as="partition", record_target="nats-leader",
                                record=records, record_node="nats-2"))
    clock.advance(31.0)
    first.tick()
    second.tick()
    seen = [(r["event"], r["fault"], r["target"], r.get("node"), r.get("via"), r.get("reason"))
            for r in log.records]
    assert seen == [("fault_start", "partition", "nats-leader", "nats-2", "cut", None),
                    ("fault_end", "partition", "nats-leader", None, None, "expired")], seen
    assert first.fault is None and second.fault is None  # both ended by their own --for
