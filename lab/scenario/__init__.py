"""Scenarios: an outage experiment as a TOML file, parsed into frozen values, and its timeline as a plan.

    load_scenario(path) -> Scenario        parse and validate; ScenarioError names the file and line
    list_scenarios(directory) -> [(name, description)]
    plan(scenario, speed, variant=None) -> [Step]   the timed fault actions, for a runner

The package, one responsibility per module (import the model, the plan and the parsing from
`lab.scenario`, which re-exports them):

    model.py          ScenarioError, the fault kinds and targets, and the frozen, validated values:
                      Scenario, Variant, FleetSpec, Profile, Broker, Fault (the delivery modes,
                      policies, backoffs, recordings and links are ecgcore.modes')
    plan.py           Step and plan(): the timeline as ordered, timed actions
    parse.py          the TOML files: parse_scenario, load_scenario, list_scenarios
    tables.py         the keys of each table and how their values convert
    fault_windows.py  [[faults]] entries as fault windows, fixed or at seeded random moments
    episodes.py       [[episodes]] entries (rhythms scheduled on the timeline) and the fleet's
                      --episode specs they become
    locator.py        Locator, which finds the line of a key, and the errors that name it
    files.py          where the shipped scenarios are, name -> file, the default speed

`ecgpipe scenario run` (these start processes, so `lab.scenario` does not import them):

    config.py         a variant as the stack's settings, its timers scaled to the speed
    variant.py        running one variant: the stack, the timeline's faults, the drain, the check
    outputs.py        what a run writes and prints: report.json, ledger.jsonl, the summary
    runner.py         the names lab.cli imports, re-exported

A file (the format is in docs/architecture.md, "Scenarios"):

    description = "ingest cut off for 72 h"      # one line, shown by `scenario list`
    duration = "96h"                              # "500ms", "90s", "2m", "72h", "1d", or seconds
    seed = 2023
    expect = ["lost = 0"]                         # or a table: variant name -> list

    [fleet]                                       # devices, delivery, recording, outbox_*, ...
    [[fleet.profiles]]                            # name, devices, hr_bpm, strips_per_day, and
                                                  # rhythm = "af": a catalogue entry (devices/profiles.toml)
    [broker]                                      # max_queued, persistence
    [[faults]]                                    # id, kind, target, start, end (+ kind params)
    [[episodes]]                                  # kind = "af-episode" (a catalogue episode),
                                                  # profiles = "af-cohort" or devices = "0-9",
                                                  # at = "20h", duration = "20m" (episodes.py)
    [[variants]]                                  # name, [variants.fleet], [variants.broker], expect

The model, its validation and the plan start no process and read no clock (load_scenario and
list_scenarios only read the files they are given).

Errors: every problem raises ScenarioError (a LabError) with one message that names the file
and the line of the offending key: unknown keys at every level, wrong types, bad durations,
zero or negative counts and capacities, fault windows outside [0, duration] or with end <=
start, unknown fault kinds or targets, overlapping faults on one target, bad expectations.
tomllib's own syntax errors are re-raised with their line. The line is found by scanning the
TOML text for the key inside its table or array-of-tables entry (Locator).
"""

from __future__ import annotations

from lab.scenario.locator import Locator
from lab.scenario.model import (
    FAULT_KINDS,
    NETWORK_KINDS,
    PROCESS_KINDS,
    Broker,
    Fault,
    FleetSpec,
    Profile,
    Scenario,
    ScenarioError,
    Variant,
)
from lab.scenario.parse import list_scenarios, load_scenario, parse_scenario
from lab.scenario.plan import Step, plan
from lab.scenario.targets import MAX_DEVICES, PROCESS_TARGETS

__all__ = [
    "FAULT_KINDS",
    "MAX_DEVICES",
    "NETWORK_KINDS",
    "PROCESS_KINDS",
    "PROCESS_TARGETS",
    "Broker",
    "Fault",
    "FleetSpec",
    "Locator",
    "Profile",
    "Scenario",
    "ScenarioError",
    "Step",
    "Variant",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
    "plan",
]
