"""Scenario files: the shipped ones load, bad ones are rejected naming the line, and the plan."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.errors import LabError
from lab.scenario import (
    Broker,
    Fault,
    FleetSpec,
    Locator,
    ScenarioError,
    list_scenarios,
    load_scenario,
    parse_scenario,
    plan,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SHIPPED = ["ambulatory-artifacts", "blackhole-vs-cut", "broker-durability-matrix", "broker-durability-nats",
           "broker-durability",
           "broker-restart-no-persistence",
           "cardiocomm-72h", "device-reboot", "forged-acks", "ingest-crash-loop",
           "ingest-freeze-broker-restart", "injection-during-outage", "nats-partition",
           "stolen-device-credentials", "thundering-herd", "worker-crash"]

# A valid file; the tests below break one line of it at a time. Line numbers are 1-based.
GOOD = textwrap.dedent('''\
    description = "a small outage"
    duration = "1h"
    seed = 1
    expect = [
        "lost = 0",
        "cause.unexplained = 0",
    ]

    [fleet]
    devices = 20
    delivery = "end-to-end"
    outbox_capacity = 500

    [broker]
    max_queued = 100
    persistence = true

    [[faults]]
    id = "outage"
    kind = "cut"
    target = "ingest"
    start = "10m"
    end = "20m"

    [[faults]]
    id = "freeze"
    kind = "stop"
    target = "broker"
    start = "30m"
    end = "31m"
''')


def parse(text: str) -> object:
    return parse_scenario(text, "bad.toml")


def rejected(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.toml")
    err = info.value
    assert isinstance(err, LabError)
    assert str(err).startswith(f"bad.toml, line {err.line}: ")
    return err


def replace_line(n: int, new: str, text: str = GOOD) -> str:
    lines = text.splitlines()
    assert lines[n - 1].strip(), f"line {n} is blank"
    lines[n - 1] = new
    return "\n".join(lines) + "\n"


def insert_after(n: int, new: str, text: str = GOOD) -> str:
    lines = text.splitlines()
    lines.insert(n, new)
    return "\n".join(lines) + "\n"


# --- the shipped scenarios ------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_loads(name: str) -> None:
    s = load_scenario(SCENARIOS / f"{name}.toml")
    assert s.name == name and s.description and "\n" not in s.description
    assert s.variants and all(v.expect for v in s.variants)
    for f in s.faults:
        assert 0 <= f.start < f.end <= s.duration
    steps = plan(s, speed=100)
    assert steps[-1].event == "run_end" and steps[-1].at == s.duration
    assert len(steps) == 2 * len(s.faults) + 2 * len(s.attacks) + 1


def test_the_example_in_the_architecture_doc_parses() -> None:
    doc = (SCENARIOS.parent / "docs" / "architecture.md").read_text()
    example = doc.split("### The scenario format")[1].split("```toml")[1].split("```")[0]
    s = parse_scenario(example, "architecture.md")
    assert [v.name for v in s.variants] == ["persistence"] and s.faults[0].id == "outage"


def test_list_scenarios_shows_every_shipped_one_with_one_line_each() -> None:
    listed = list_scenarios(SCENARIOS)
    assert [n for n, _ in listed] == SHIPPED
    assert all(d and "\n" not in d and not d.startswith("invalid") for _, d in listed)


def test_list_scenarios_marks_a_bad_file_without_hiding_the_others(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "bad.toml").write_text(replace_line(10, "devices = 0"))
    (tmp_path / "notes.txt").write_text("not a scenario")
    listed = dict(list_scenarios(tmp_path))
    assert listed["good"] == "a small outage"
    assert listed["bad"].startswith("invalid: ") and "line 10" in listed["bad"]
    assert set(listed) == {"good", "bad"}


def test_cardiocomm_runs_the_same_timeline_in_all_three_modes() -> None:
    s = load_scenario(SCENARIOS / "cardiocomm-72h.toml")
    assert [v.name for v in s.variants] == ["fire-and-forget", "broker-ack", "end-to-end"]
    assert [v.fleet.delivery for v in s.variants] == ["fire-and-forget", "broker-ack", "end-to-end"]
    fleet = s.variants[0].fleet
    assert (fleet.devices, fleet.recording, fleet.strip_length) == (1000, "strip", 30.0)
    (outage,) = s.faults
    assert (outage.kind, outage.target, outage.end - outage.start) == ("cut", "ingest", 72 * 3600)
    assert s.duration == 96 * 3600
    assert s.variant("end-to-end").expect[0].text == "lost = 0"
    assert any(e.metric == "cause.broker-queue-overflow" for e in s.variant("broker-ack").expect)
    # three profiles of 3, 4 and 2 strips a day: 9,300 strips during the outage, up to 12 per
    # device; the outbox holds them all, the broker queue does not
    assert [(p.name, p.devices, p.strips_per_day) for p in fleet.profiles] == [
        ("post-ablation", 500, None), ("af-surveillance", 300, 4), ("palpitations", 200, 2)]
    outage_readings = fleet.readings_per_second * 72 * 3600
    assert outage_readings == pytest.approx(9300)
    assert fleet.outbox_capacity > 4 * 3 and s.variants[1].broker.max_queued < outage_readings


def test_ingest_crash_loop_draws_five_kills_from_the_seed() -> None:
    s = load_scenario(SCENARIOS / "ingest-crash-loop.toml")
    kills = [f for f in s.faults if f.kind == "kill"]
    assert [f.id for f in kills] == [f"crash-{i}" for i in range(1, 6)]
    assert all(f.target == "ingest" and f.end - f.start == 10 for f in kills)
    assert load_scenario(SCENARIOS / "ingest-crash-loop.toml").faults == s.faults  # deterministic


def test_variants_override_fleet_and_broker() -> None:
    s = load_scenario(SCENARIOS / "broker-restart-no-persistence.toml")
    assert [(v.name, v.broker.persistence, v.fleet.delivery) for v in s.variants] == [
        ("no-persistence", False, "broker-ack"), ("persistence", True, "broker-ack"),
        ("end-to-end", False, "end-to-end")]
    with pytest.raises(ScenarioError, match="no variant 'nope'"):
        s.variant("nope")


def test_a_file_without_variants_has_one_default_variant() -> None:
    s = parse_scenario(GOOD, "good.toml")
    assert [v.name for v in s.variants] == ["default"]
    v = s.variant()
    assert v.fleet == FleetSpec(devices=20, delivery="end-to-end", outbox_capacity=500)
    assert v.broker == Broker(max_queued=100, persistence=True)
    assert [e.text for e in v.expect] == ["lost = 0", "cause.unexplained = 0"]
    assert [f.id for f in s.faults] == ["outage", "freeze"]
    assert s.faults[0].start == 600 and s.faults[0].end == 1200


def test_durations_as_numbers_and_strings() -> None:
    s = parse(replace_line(2, "duration = 3600.0").replace('start = "10m"', "start = 600")
              .replace('end = "20m"', 'end = "1200s"'))
    assert s.duration == 3600 and s.faults[0].start == 600 and s.faults[0].end == 1200


def test_network_fault_parameters() -> None:
    text = GOOD.replace('kind = "cut"', 'kind = "latency"\nlatency = "200ms"\njitter = "50ms"')
    f = parse(text).faults[0]
    assert (f.kind, f.latency, f.jitter) == ("latency", 0.2, 0.05)
    text = GOOD.replace('kind = "cut"', 'kind = "bandwidth"\nbandwidth = "64kbps"')
    assert parse(text).faults[0].bandwidth == 8000
    text = GOOD.replace('kind = "cut"', 'kind = "flap"\nup = "5s"\ndown = "2s"')
    assert (parse(text).faults[0].up, parse(text).faults[0].down) == (5, 2)


def test_profiles_and_strip_mode() -> None:
    text = GOOD.replace('outbox_capacity = 500', textwrap.dedent('''\
        recording = "strip"
        strips_per_day = 4

        [[fleet.profiles]]
        name = "resting"
        devices = 15
        hr_bpm = [55, 75]

        [[fleet.profiles]]
        name = "tachy"
        devices = 5
        hr_bpm = 120
        strips_per_day = 12'''))
    fleet = parse(text).variant().fleet
    assert (fleet.recording, fleet.strip_length, fleet.strips_per_day, fleet.strip_chunks) == \
        ("strip", 30.0, 4, 1)
    assert [(p.name, p.devices, p.hr_bpm) for p in fleet.profiles] == [
        ("resting", 15, (55, 75)), ("tachy", 5, (120, 120))]
    assert fleet.readings_per_second * 86400 == 15 * 4 + 5 * 12
    err = rejected(text.replace("strips_per_day = 12", "strips_per_day = 4000"))
    assert "do not fit in a day" in err.message and err.line == 24
    err = rejected(text.replace("strips_per_day = 4\n", "strips_per_day = 4\nstrip_length = \"7h\"\n"))
    assert "too short for a 25200-s strip" in err.message and err.line == 14


def test_fleet_procs_carry_a_larger_fleet_into_the_stack() -> None:
    from lab.scenario.config import stack_config
    s = parse_scenario(replace_line(10, "devices = 20000\nprocs = 2"), "big.toml")
    var = s.variants[0]
    assert var.fleet.procs == 2 and var.fleet.devices == 20000
    assert stack_config(s, var, speed=10).fleet_procs == 2
    for procs, words in (("0", "procs must be a whole number of at least 1"),
                         ("17", "procs must be 1..16 and at most devices, got 17"),
                         ("2.5", "procs must be a whole number")):
        err = rejected(insert_after(10, f"procs = {procs}"))
        assert words in err.message and err.line == 11, (procs, err)
    err = rejected(replace_line(10, "devices = 3\nprocs = 4"))
    assert "at most devices, got 4" in err.message


# --- rejected files, each naming the line ---------------------------------------------------


@pytest.mark.parametrize(("line", "new", "words"), [
    (1, 'descripton = "typo"', "unknown key 'descripton'"),
    (11, 'delivery = "carrier-pigeon"', "delivery must be one of"),
    (12, "outbox_capacity = -5", "outbox_capacity must be a whole number of at least 1, got -5"),
    (12, "outbox_capacity = 0", "at least 1"),
    (12, "outbox_capacity = 2.5", "outbox_capacity must be a whole number"),
    (10, 'devices = "ten"', "devices must be a whole number"),
    (10, "devices = 20000", "more than 1 fleet process(es) drive (10000 each): set [fleet] procs"),
    (15, "max_queued = 0", "max_queued must be a whole number of at least 1"),
    (16, 'persistence = "yes"', "persistence must be true or false"),
    (2, 'duration = "1 hour"', "is not a duration"),
    (2, "duration = 0", "duration must be more than 0"),
    (2, 'duration = "-5m"', "is not a duration"),
    (3, "seed = -1", "seed must be 0 or more"),
    (21, 'target = "database"', "needs a link target"),
    (20, 'kind = "meteor"', "kind must be one of"),
    (22, 'start = "soon"', "is not a duration"),
    (23, 'end = "2h"', "ends at 7200 s, after the run ends (3600 s)"),
    (23, 'end = "5m"', "must be after start"),
    (23, 'end = "10m"', "must be after start"),
    (29, 'start = "2h"', "starts at 7200 s, after the run ends"),
    (28, 'target = "proxy"', "needs a process target"),
    (19, 'id = "has space"', "a fault id is letters"),
    (26, 'id = "outage"', "fault id 'outage' is used twice"),
    (6, '    "cause.gremlins > 0",', "unknown measure 'cause.gremlins'"),
    (5, '    "lost >> 0",', "bad expectation 'lost >> 0'"),
    (5, '    "window.nowhere.lost = 0",', "names fault window 'nowhere'"),
])
def test_bad_values_name_their_line(line: int, new: str, words: str) -> None:
    err = rejected(replace_line(line, new))
    assert words in err.message
    assert err.line == line


@pytest.mark.parametrize(("after", "new", "line", "words"), [
    (3, "colour = 1", 4, "unknown key 'colour' in the top level"),
    (12, "capacity = 5", 13, "unknown key 'capacity' in [fleet]"),
    (16, "max_queued_messages = 5", 17, "unknown key 'max_queued_messages' in [broker]"),
    (23, 'duration = "5m"', 24, "unknown key 'duration' in [[faults]] #1"),
    (29, "latency = \"1s\"", 30, "latency does not apply to kind = 'stop'"),
    (12, 'strip_length = "30s"', 13, 'strip_length only applies to recording = "strip"'),
    (12, "strip_chunks = 2", 13, 'strip_chunks only applies to recording = "strip"'),
    (12, 'keepalive = "1500ms"', 13, "keepalive must be whole seconds"),
    (12, "strips_per_day = 2.5", 13, "strips_per_day must be a whole number"),
    (30, "\n[[faults]]\nkind = \"cut\"\ntarget = \"ingest\"\nstart = \"15m\"\nend = \"25m\"", 35,
     "overlaps 'outage'"),
    (12, "profiles = [{ name = \"x\", devices = 3, colour = 1 }]", 13, "unknown key 'colour'"),
    (12, "profiles = [1]", 13, "[fleet] [[profiles]] #1 must be a table"),
    (12, "profiles = \"all\"", 13, "profiles must be an array of tables"),
    (16, "[fleet.extra]\nx = 1", 17, "unknown key 'extra' in [fleet]"),
])
def test_bad_keys_name_their_line(after: int, new: str, line: int, words: str) -> None:
    err = rejected(insert_after(after, new))
    assert words in err.message
    assert err.line == line


def test_a_delivery_list_needs_distinct_modes() -> None:
    err = rejected(replace_line(11, 'delivery = ["broker-ack", "broker-ack"]'))
    assert "distinct" in err.message and err.line == 11


def test_a_window_outside_the_run_names_its_line_in_a_fault_further_down() -> None:
    err = rejected(replace_line(30, 'end = "61m"'))
    assert err.line == 30 and "after the run ends" in err.message and err.key == ("faults", 1, "end")


def test_toml_syntax_error_keeps_tomllib_line() -> None:
    err = rejected(replace_line(15, "max_queued = = 100"))
    assert err.line == 15 and err.message.startswith("not valid TOML")
    err = rejected(replace_line(9, "[fleet"))
    assert err.line == 9
    err = rejected(insert_after(1, 'description = "again"'))
    assert err.line == 2 and "not valid TOML" in err.message


def test_missing_tables_and_keys() -> None:
    err = rejected("\n".join(GOOD.splitlines()[:8]) + "\n")
    assert "needs 'fleet'" in err.message and err.line == 1
    err = rejected(replace_line(10, "outbox_policy = \"reject-new\""))
    assert "[fleet] needs 'devices'" in err.message and err.line == 9
    err = rejected(replace_line(22, "# no start"))
    assert "needs 'start'" in err.message and err.line == 18


def test_no_expectation_at_all() -> None:
    text = "\n".join(line for i, line in enumerate(GOOD.splitlines(), 1) if not 4 <= i <= 7) + "\n"
    err = rejected(text)
    assert "no expected verdict" in err.message


def test_profile_errors() -> None:
    base = GOOD.replace("outbox_capacity = 500", textwrap.dedent('''\
        [[fleet.profiles]]
        name = "a"
        devices = 15

        [[fleet.profiles]]
        name = "b"
        devices = 4'''))
    err = rejected(base)
    assert "profiles have 19 devices" in err.message and err.line == 12
    err = rejected(base.replace('name = "b"', 'name = "a"').replace("devices = 4", "devices = 5"))
    assert "named twice" in err.message and err.line == 17
    err = rejected(base.replace("devices = 4", "devices = 5\nhr_bpm = [10, 300]"))
    assert "hr_bpm" in err.message and err.line == 19


def test_expect_table_per_variant() -> None:
    text = (GOOD.replace('delivery = "end-to-end"', 'delivery = ["fire-and-forget", "end-to-end"]')
            .replace('expect = [\n    "lost = 0",\n    "cause.unexplained = 0",\n]\n', ''))
    with_table = text + '\n[expect]\nfire-and-forget = ["lost > 0"]\nend-to-end = ["lost = 0"]\n'
    s = parse(with_table)
    assert [(v.name, v.fleet.delivery, v.expect[0].text) for v in s.variants] == [
        ("fire-and-forget", "fire-and-forget", "lost > 0"), ("end-to-end", "end-to-end", "lost = 0")]
    err = rejected(text + '\n[expect]\nfire-and-forget = ["lost > 0"]\n')
    assert "no verdict for variant 'end-to-end'" in err.message
    err = rejected(with_table + 'broker-ack = ["lost = 0"]\n')
    assert "names variant 'broker-ack'" in err.message and err.line == with_table.count("\n") + 1
    err = rejected(text.replace('"end-to-end"]', '"end-to-end", "by-post"]') +
                   '\n[expect]\nfire-and-forget = ["lost > 0"]\n')
    assert "not 'by-post'" in err.message and err.line == 7


def test_variant_errors_point_into_the_variant() -> None:
    text = GOOD + textwrap.dedent('''
        [[variants]]
        name = "one"

        [[variants]]
        name = "two"
        fleet = { delivery = "broker-ack", outbox_capacity = -1 }
        expect = ["lost > 0"]
        ''')
    err = rejected(text)
    assert err.line == 37 and "outbox_capacity" in err.message
    err = rejected(text.replace("outbox_capacity = -1", "outbox_capacity = 9").replace('"two"', '"one"'))
    assert "variant 'one' is named twice" in err.message and err.line == 36
    err = rejected(text.replace(', outbox_capacity = -1', '')
                   .replace('expect = ["lost > 0"]', 'expect = "lost > 0"'))
    assert "expect must be a list" in err.message and err.line == 38
    both = text.replace('delivery = "end-to-end"', 'delivery = ["broker-ack", "end-to-end"]')
    err = rejected(both)
    assert "[[variants]] are given" in err.message and err.line == 11
    err = rejected(text.replace("[[variants]]\nname = \"one\"",
                                "[[variants]]\nname = \"one\"\ncolour = 3", 1))
    assert "unknown key 'colour' in [[variants]] #1" in err.message and err.line == 34


def test_kind_needs_its_parameters() -> None:
    err = rejected(GOOD.replace('kind = "cut"', 'kind = "latency"'))
    assert "needs latency" in err.message and err.line == 20
    err = rejected(GOOD.replace('kind = "cut"', 'kind = "flap"\nup = "1s"\ndown = 0'))
    assert "down must be more than 0" in err.message and err.line == 22


def test_random_moments_errors() -> None:
    random_kill = 'count = 3\nbetween = ["1m", "50m"]\nlasting = "10s"'
    ok = GOOD.replace('start = "10m"\nend = "20m"', random_kill)
    s = parse(ok)
    assert [f.id for f in s.faults if f.kind == "cut"] == ["outage-1", "outage-2", "outage-3"]
    err = rejected(ok.replace('"50m"', '"2h"'))
    assert "must lie within the run" in err.message and err.line == 23
    err = rejected(ok.replace("count = 3", "count = 300"))
    assert "do not fit" in err.message and err.line == 22
    err = rejected(ok.replace('lasting = "10s"', 'lasting = "10s"\nstart = "1m"'))
    assert "cannot go with count" in err.message and err.line == 25
    err = rejected(ok.replace('lasting = "10s"\n', ''))
    assert "'lasting' is missing" in err.message and err.line == 18


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 120), st.integers(0, 2**31), st.integers(0, 600))
def test_random_moments_fit_and_never_overlap(count: int, lasting: int, seed: int, lo: int) -> None:
    hi = lo + (2 * count - 1) * lasting + 500
    text = textwrap.dedent(f'''\
        description = "r"
        duration = {hi + 10}
        seed = {seed}
        expect = ["lost = 0"]
        [fleet]
        devices = 1
        [[faults]]
        id = "k"
        kind = "kill"
        target = "ingest"
        count = {count}
        between = [{lo}, {hi}]
        lasting = {lasting}
        ''')
    faults = parse(text).faults
    assert len(faults) == count
    for f in faults:
        assert lo <= f.start and f.end <= hi and f.end - f.start == pytest.approx(lasting)
    for a, b in itertools.pairwise(faults):
        assert b.start - a.end >= lasting - 0.002
    assert parse(text).faults == faults


def test_load_scenario_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


def test_model_validates_itself_without_a_file() -> None:
    with pytest.raises(ScenarioError) as info:
        Fault(id="x", kind="cut", target="ingest", start=10, end=5)
    assert info.value.key == ("end",) and info.value.line is None
    with pytest.raises(ScenarioError):
        FleetSpec(devices=1, outbox_policy="keep-all")
    with pytest.raises(ScenarioError):
        Broker(max_queued=-1)


# --- the plan -------------------------------------------------------------------------------


def test_plan_orders_actions_and_scales_to_real_time() -> None:
    s = parse(GOOD)
    steps = plan(s, speed=60)
    assert [(st_.at, st_.action, st_.event, st_.fault_id) for st_ in steps] == [
        (600, "apply", "fault_start", "outage"), (1200, "heal", "fault_end", "outage"),
        (1800, "stop", "fault_start", "freeze"), (1860, "cont", "fault_end", "freeze"),
        (3600, "end", "run_end", None)]
    assert [x.real_at for x in steps] == [10, 20, 30, 31, 60]
    assert steps[0].params == {"kind": "cut"}
    assert steps[2].params == {"signal": "STOP", "persistence": True}


def test_plan_heals_before_the_next_fault_starts() -> None:
    text = GOOD.replace('start = "30m"\nend = "31m"', 'start = "20m"\nend = "31m"').replace(
        'kind = "stop"\ntarget = "broker"', 'kind = "blackhole"\ntarget = "ingest"')
    steps = plan(parse(text))
    assert [(x.at, x.action) for x in steps][:3] == [(600, "apply"), (1200, "heal"), (1200, "apply")]
    assert steps[2].params == {"kind": "blackhole"}


def test_plan_maps_kinds_to_proxy_and_process_actions() -> None:
    text = GOOD.replace('kind = "cut"', 'kind = "latency"\nlatency = "100ms"').replace(
        'kind = "stop"', 'kind = "kill"')
    steps = plan(parse(text))
    assert steps[0].params == {"kind": "slow", "latency_s": 0.1}
    assert (steps[2].action, steps[3].action, steps[2].params["signal"]) == ("kill", "start", "KILL")


def test_plan_uses_the_variant_broker_persistence() -> None:
    s = load_scenario(SCENARIOS / "broker-restart-no-persistence.toml")
    term = [x for x in plan(s, 10, "persistence") if x.target == "broker"]
    assert [x.action for x in term] == ["term", "start"] and term[0].params["persistence"] is True
    assert plan(s, 10)[1].params.get("persistence") is False


@pytest.mark.parametrize("speed", [0, -1, float("inf"), float("nan")])
def test_plan_rejects_bad_speed(speed: float) -> None:
    with pytest.raises(ScenarioError, match="speed"):
        plan(parse(GOOD), speed)


# --- the key locator ------------------------------------------------------------------------


def test_locator_tables_arrays_inline_and_strings() -> None:
    text = textwrap.dedent('''\
        a = """
        b = 1
        """
        "quoted key" = 'x = 2' # c = 3
        [t]
        x.y = [
          1,   # one
          { z = 2, w = [3,
            4] },
        ]
        [[arr]]
        k = 1
        [[arr]]
        k = 2
        [arr.sub]
        m = "it's"
        ''')
    loc = Locator(text)
    assert loc.line(("a",)) == 1
    assert ("b",) not in loc.lines  # inside a multi-line string
    assert loc.line(("quoted key",)) == 4 and ("c",) not in loc.lines
    assert loc.line(("t", "x", "y")) == 6
    assert loc.line(("t", "x", "y", 0)) == 7
    assert loc.line(("t", "x", "y", 1, "z")) == 8
    assert loc.line(("t", "x", "y", 1, "w", 1)) == 9
    assert loc.line(("arr", 0, "k")) == 12 and loc.line(("arr", 1, "k")) == 14
    assert loc.line(("arr", 1, "sub", "m")) == 16
    assert loc.line(("arr", 1, "sub", "nothing")) == 15  # falls back to its table
    assert loc.line(("nowhere",)) is None


def test_auto_speed_keeps_cardiocomm_well_inside_five_minutes() -> None:
    from lab.scenario.files import SCENARIO_DIR, auto_speed

    for name in ("cardiocomm-72h", "thundering-herd", "blackhole-vs-cut", "ingest-crash-loop"):
        scn = load_scenario(SCENARIO_DIR / f"{name}.toml")
        speed = auto_speed(scn)
        timeline_s = len(scn.variants) * scn.duration / speed
        rate = max(v.fleet.readings_per_second for v in scn.variants) * speed
        assert rate <= 1500.0, (name, rate)  # what the stack sustains
        if name == "cardiocomm-72h":  # three timelines, plus ~15 s a variant to start and drain
            assert timeline_s <= 240.0 and timeline_s + 3 * 20 < 300, speed


def test_auto_speed_slows_down_for_a_bigger_fleet_so_its_backlog_can_drain() -> None:
    from lab.scenario.config import with_devices
    from lab.scenario.files import DRAIN_READINGS_PER_S, SCENARIO_DIR, auto_speed

    scn = load_scenario(SCENARIO_DIR / "cardiocomm-72h.toml")
    small, big = auto_speed(scn), auto_speed(scn, [with_devices(v, 5000) for v in scn.variants])
    assert big < small / 3, (small, big)
    outage = scn.faults[0]
    backlog = with_devices(scn.variants[0], 5000).fleet.readings_per_second * (outage.end - outage.start)
    drain_real_s = backlog / DRAIN_READINGS_PER_S
    assert drain_real_s * big <= 0.25 * (outage.end - outage.start) + 1.0  # within its allowance
    assert scn.duration / big <= 400.0  # still minutes a variant, not hours


# --- rhythms and scheduled episodes -----------------------------------------------------------

COHORTS = GOOD.replace("outbox_capacity = 500", textwrap.dedent('''\
    [[fleet.profiles]]
    name = "resting"
    devices = 15

    [[fleet.profiles]]
    name = "af-cohort"
    devices = 5
    rhythm = "sinus"'''))  # lines 12-19


def with_episode(body: str, text: str = COHORTS) -> str:
    return text + "\n[[episodes]]\n" + textwrap.dedent(body)  # [[episodes]] is on line 39


def test_profiles_name_a_rhythm_and_episodes_map_to_the_fleets_episode_specs() -> None:
    from devices.catalogue import load_catalogue, parse_episode
    from lab.scenario.config import SCENARIO_ORIGIN, stack_config, with_devices

    s = parse_scenario(with_episode('''\
        kind = "af-episode"
        profiles = "af-cohort"
        at = "10m"
        duration = "20m"
        [[episodes]]
        kind = "pause"
        devices = "0-2,19,40-45"
        at = 600
        duration = "6s"
        '''), "ok.toml")
    var = s.variants[0]
    assert [p.rhythm for p in var.fleet.profiles] == [None, "sinus"]
    assert [(e.kind, e.at, e.duration) for e in s.episodes] == [("af-episode", 600, 1200), ("pause", 600, 6)]
    cfg = stack_config(s, var, speed=10)
    start = f"{SCENARIO_ORIGIN + 600:.3f}"
    assert cfg.episodes == (f"af-episode@{start}+1200.000s:devices=15-19",
                            f"pause@{start}+6.000s:devices=0-2", f"pause@{start}+6.000s:devices=19")
    assert cfg.profiles is None  # each profile's rhythm rides on its cohort: exact devices
    assert cfg.cohorts[-1].endswith(":profile=sinus"), cfg.cohorts
    # a fleet scaled down keeps each profile's episodes on that profile's devices
    small = stack_config(s, with_devices(var, 4), speed=10)
    assert small.episodes == (f"af-episode@{start}+1200.000s:devices=3", f"pause@{start}+6.000s:devices=0-2")
    # the fleet's own parser takes them, and the mix
    catalogue = load_catalogue()
    assert [parse_episode(e, catalogue).devices for e in cfg.episodes] == [(15, 19), (0, 2), (19, 19)]
    assert parse_episode(cfg.episodes[0], catalogue).start == SCENARIO_ORIGIN + 600
    mixed = parse_scenario(with_episode('kind = "pause"\ndevices = "1"\nat = 1\nduration = 6\n').replace(
        'name = "resting"', 'name = "resting"\nrhythm = "af"'), "ok.toml")
    cohorts = stack_config(mixed, mixed.variants[0], speed=10).cohorts
    assert [c.rsplit(":profile=", 1)[-1] for c in cohorts] == ["af", "sinus"], cohorts
    # and the fleet gives exactly those devices those rhythms
    from devices.catalogue import fleet_profiles
    from devices.profile import Cohort

    parsed = [Cohort.parse(c) for c in cohorts]
    got = [p.rhythm.label for p in fleet_profiles(sum(c.devices for c in parsed), 5, cohorts=parsed)]
    assert got == [c.profile for c in parsed for _ in range(c.devices)], got


def test_a_fleet_without_rhythms_passes_no_mix() -> None:
    from lab.scenario.config import stack_config

    s = parse_scenario(GOOD, "ok.toml")
    cfg = stack_config(s, s.variants[0], speed=10)
    assert cfg.profiles is None and cfg.episodes == ()


@pytest.mark.parametrize(("body", "line", "words"), [
    ('kind = "af-episode"\nprofiles = "af-cohrt"\nat = "10m"\nduration = "20m"\n', 41,
     "did you mean 'af-cohort'"),
    ('kind = "af-episode"\nprofiles = "af-cohort"\nat = "2h"\nduration = "20m"\n', 42, "after the run ends"),
    ('kind = "af-episode"\nprofiles = "af-cohort"\nat = "10m"\nduration = "0s"\n', 43, "more than 0"),
    ('kind = "af-episode"\nat = "10m"\nduration = "20m"\n', 39, "either profiles or devices"),
    ('kind = "af-episode"\nprofiles = "af-cohort"\ndevices = "1"\nat = "1m"\nduration = "1m"\n', 41,
     "either profiles or devices"),
    ('kind = "af-episode"\ndevices = "a-b"\nat = "10m"\nduration = "20m"\n', 41, "indices"),
    ('kind = "AF episode"\ndevices = "1"\nat = "10m"\nduration = "20m"\n', 40, "catalogue episode"),
    ('kind = "af-episod"\ndevices = "1"\nat = "10m"\nduration = "20m"\n', 40, "did you mean 'af-episode'"),
    ('kind = "af"\ndevices = "1"\nat = "10m"\nduration = "20m"\n', 40, "unknown episode 'af'"),
    ('kind = "af-episode"\ndevices = "1"\nat = "10m"\nlasting = "20m"\n', 43, "unknown key 'lasting'"),
    ('kind = "af-episode"\ndevices = "1"\nat = "soon"\nduration = "20m"\n', 42, "not a duration"),
])
def test_episode_errors_name_their_line(body: str, line: int, words: str) -> None:
    err = rejected(with_episode(body))
    assert words in err.message and err.line == line, (err.line, str(err))


def test_a_bad_rhythm_names_its_line() -> None:
    err = rejected(COHORTS.replace('rhythm = "sinus"', 'rhythm = "atrial fibrillation"'))
    assert "rhythm" in err.message and err.line == 19
    err = rejected(COHORTS.replace('rhythm = "sinus"', 'rhythm = "sinsu"'))
    assert "did you mean 'sinus'" in err.message and err.line == 19
    err = rejected(COHORTS.replace('rhythm = "sinus"', 'rhythm = "af-episode"'))  # an episode, not a rhythm
    assert "unknown profile 'af-episode'" in err.message and err.line == 19
