"""Scenarios: an outage experiment as a TOML file, parsed into frozen values, and its timeline as a plan.

    load_scenario(path) -> Scenario        parse and validate; ScenarioError names the file and line
    list_scenarios(directory) -> [(name, description)]
    plan(scenario, speed, variant=None) -> [Step]   the timed fault actions, for a runner

The package, one responsibility per module (import from `lab.scenario`, which re-exports them):

    model.py   ScenarioError, the constants and the frozen, validated values: Scenario, Variant,
               FleetSpec, Profile, Broker, Fault
    plan.py    Step and plan(): the timeline as ordered, timed actions
    parse.py   the TOML files: parse_scenario, load_scenario, list_scenarios, and _Locator, which
               finds the line of a key

A file (the format is in docs/architecture.md, "Scenarios"):

    description = "ingest cut off for 72 h"      # one line, shown by `scenario list`
    duration = "96h"                              # "500ms", "90s", "2m", "72h", "1d", or seconds
    seed = 2023
    expect = ["lost = 0"]                         # or a table: variant name -> list

    [fleet]                                       # devices, delivery, recording, outbox_*, ...
    [broker]                                      # max_queued, persistence
    [[faults]]                                    # id, kind, target, start, end (+ kind params)
    [[variants]]                                  # name, [variants.fleet], [variants.broker], expect

Nothing here starts a process or reads a clock: the model, its validation and the plan are pure
(load_scenario and list_scenarios only read the files they are given).

Errors: every problem raises ScenarioError (a LabError) with one message that names the file
and the line of the offending key: unknown keys at every level, wrong types, bad durations,
zero or negative counts and capacities, fault windows outside [0, duration] or with end <=
start, unknown fault kinds or targets, overlapping faults on one target, bad expectations.
tomllib's own syntax errors are re-raised with their line. The line is found by scanning the
TOML text for the key inside its table or array-of-tables entry (_Locator).
"""

from __future__ import annotations

from lab.scenario.model import (
    BACKOFF,
    DELIVERY_MODES,
    FAULT_KINDS,
    LINKS,
    MAX_DEVICES,
    NETWORK_KINDS,
    POLICIES,
    PROCESS_KINDS,
    PROCESS_TARGETS,
    RECORDING,
    Broker,
    Fault,
    FleetSpec,
    Profile,
    Scenario,
    ScenarioError,
    Variant,
)
from lab.scenario.parse import _Locator, list_scenarios, load_scenario, parse_scenario
from lab.scenario.plan import Step, plan

__all__ = [
    # model
    "BACKOFF",
    "DELIVERY_MODES",
    "FAULT_KINDS",
    "LINKS",
    "MAX_DEVICES",
    "NETWORK_KINDS",
    "POLICIES",
    "PROCESS_KINDS",
    "PROCESS_TARGETS",
    "RECORDING",
    "Broker",
    "Fault",
    "FleetSpec",
    "Profile",
    "Scenario",
    "ScenarioError",
    "Variant",
    # plan
    "Step",
    "plan",
    # parse
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
    "_Locator",  # private, but tests/lab/test_scenario.py imports it from here
]
