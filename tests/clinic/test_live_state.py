"""The live page's snapshot (clinic/api/live_state.py and its parts) over a state dir built by
hand with the real stores (tests/clinic/test_api_support.py's make_state); no process starts."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from clinic.api.live_clock import StackClock
from clinic.api.live_ecg import ecg_window
from clinic.api.live_series import LevelPoint, LevelSeries, OutageLog
from clinic.api.live_state import LiveSource
from clinic.api.live_status import DOWN, OUTAGE, RUNNING_STATE, stack_state
from lab.report.summary import build_report
from lab.stack.statedir import StackConfig, StateDir
from tests.clinic.test_api_support import DEV1, DEV2, RATE, T0, client_for, make_state


class Ticks:
    """An injected monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def sd(tmp_path: Path) -> StateDir:
    return make_state(tmp_path / "state")


def source(sd: StateDir, ticks: Ticks, wall: float = T0 + 10) -> LiveSource:
    return LiveSource(sd, refresh_s=1.0, wall=lambda: wall, monotonic=ticks)


def test_ledger_is_the_reports(sd: StateDir) -> None:
    snap = source(sd, Ticks()).snapshot()
    report = build_report(sd)
    assert snap["ledger"] == {**report["totals"], "balanced": report["balanced"]}
    # make_state: hc-0001 stored 0,1,2,4,5, buffered 6..9, seq 3 lost; hc-0002 all 3 stored
    assert (snap["ledger"]["generated"], snap["ledger"]["stored"], snap["ledger"]["buffered"],
            snap["ledger"]["lost"]) == (13, 8, 4, 1)
    rows = {r["id"]: r for r in snap["devices"]["list"]}
    assert (rows[DEV1]["stored"], rows[DEV1]["buffered"], rows[DEV1]["lost"]) == (5, 4, 1)
    assert snap["stack"]["state"] == DOWN  # a stack.json, but nothing ever started


def test_stack_part_is_cached_for_its_ttl_then_rebuilt(sd: StateDir) -> None:
    ticks = Ticks()
    src = source(sd, ticks)
    first = src.stack_part()
    ticks.t += 0.2  # under refresh / 2
    assert src.stack_part() is first
    ticks.t += 1.0
    again = src.stack_part()
    assert again is not first and again["ledger"] == first["ledger"]


def test_missing_stores_say_why_instead_of_zeros(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "empty")
    sd.root.mkdir()
    snap = source(sd, Ticks()).snapshot()
    assert snap["ledger"] is None and "outboxes" in snap["ledger_error"]
    assert snap["stack"]["state"] == DOWN and "no stack" in snap["stack"]["error"]
    assert snap["ecg"] is None and snap["series"]["t"] == []


def test_series_is_bounded_and_keeps_both_ends() -> None:
    series = LevelSeries(max_points=20, min_step_s=1.0)
    for i in range(1000):
        series.add(LevelPoint(T0 + i, outbox=i % 7, broker=None, stored=3 * i))
    pts = series.points
    assert len(pts) <= 20
    assert pts[0].t == T0 and pts[-1].t == T0 + 999
    assert all(a.t < b.t for a, b in itertools.pairwise(pts))
    assert series.rate(window_s=10) == pytest.approx(3.0)
    assert not series.add(LevelPoint(T0 + 999.5, 0, None, 0))  # closer than min_step_s
    assert set(series.as_dict()) == {"t", "outbox", "broker", "stored"}


def test_series_starts_again_when_time_goes_back() -> None:
    series = LevelSeries(max_points=10, min_step_s=1.0)
    series.add(LevelPoint(T0 + 50, 1, 0, 1))
    series.add(LevelPoint(T0, 2, 0, 2))  # a new run in the same state dir
    assert [p.outbox for p in series.points] == [2]


def test_levels_come_from_the_ledger_and_the_watchers_sample(sd: StateDir) -> None:
    (sd.root / "watch").mkdir()
    latest = {"t": T0, "values": {"store/messages/count": 9, "retained messages/count": 3}}
    (sd.root / "watch" / "latest.json").write_text(json.dumps(latest))
    ticks = Ticks()
    src = source(sd, ticks)
    src.snapshot()
    ticks.t += 5
    src.clock.wall = lambda: T0 + 15
    snap = src.snapshot()
    assert snap["series"]["outbox"] == [4, 4] and snap["series"]["stored"] == [8, 8]
    assert snap["series"]["broker"] == [6, 6] and snap["broker_queue"] == 6  # 9 held less 3 retained
    assert snap["ingest_rate"]["per_s"] == 0.0


def nemesis(sd: StateDir, records: list[object]) -> None:
    sd.nemesis_history.parent.mkdir(parents=True, exist_ok=True)
    sd.nemesis_history.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_fault_windows_from_the_nemesis_history(sd: StateDir) -> None:
    nemesis(sd, [
        {"t": T0 + 1, "event": "fault_start", "fault": "cut", "target": "ingest", "seq": 1},
        {"t": T0 + 4, "event": "fault_end", "fault": "cut", "target": "ingest", "seq": 1, "reason": "healed"},
        {"t": T0 + 6, "event": "fault_start", "fault": "blackhole", "target": "devices", "seq": 1},
        "torn line",
    ])
    faults = source(sd, Ticks()).snapshot()["faults"]
    assert [(f["fault"], f["target"], f["start"], f["end"]) for f in faults] == [
        ("cut", "ingest", T0 + 1, T0 + 4), ("blackhole", "devices", T0 + 6, None)]
    assert {f["source"] for f in faults} == {"history"}


def status_doc(**ingest: Any) -> dict[str, Any]:
    running = {"pid": 1, "state": "running", "reason": None}
    return {"components": ["broker", "ingest", "analysis", "proxy-ingest"], "broker": running,
            "ingest": {"pid": 2, "state": "running", "reason": None, **ingest},
            "analysis": {"pid": None, "state": "exited", "reason": "never started (no pidfile)"},
            "proxy-ingest": dict(running), "delivery": "end-to-end"}


def test_header_running_outage_and_down() -> None:
    def same(t: float) -> float:
        return t

    assert stack_state(status_doc(), same, T0)["state"] == RUNNING_STATE  # analysis never started
    killed = status_doc(state="exited", reason="killed by SIGKILL (`ecgpipe kill`)", signalled_at=T0 - 7)
    head = stack_state(killed, same, T0)
    assert head["state"] == OUTAGE
    assert head["outages"] == [{"target": "ingest", "kind": "process",
                                "what": "killed by SIGKILL (`ecgpipe kill`)", "since": T0 - 7}]
    cut = status_doc()
    cut["proxy-ingest"]["fault"] = {"fault": "cut", "describe": "cut for 30s", "started_at": T0 - 2}
    assert stack_state(cut, same, T0)["outages"][0] == {"target": "link ingest", "kind": "cut",
                                                        "what": "cut for 30s", "since": T0 - 2}
    gone = status_doc(state="exited")
    gone["broker"] = gone["proxy-ingest"] = {"pid": 1, "state": "exited"}
    assert stack_state(gone, same, T0)["state"] == DOWN


def test_outage_log_closes_a_window_when_the_component_is_back() -> None:
    log = OutageLog(max_windows=2)
    log.observe(T0 + 5, {"ingest": ("killed", T0 + 3)})
    log.observe(T0 + 6, {"ingest": ("killed", T0 + 3)})
    assert [(o.start, o.end) for o in log.current] == [(T0 + 3, None)]
    log.observe(T0 + 9, {})
    assert log.current == []
    assert [(o.target, o.start, o.end) for o in log.windows] == [("ingest", T0 + 3, T0 + 9)]
    for i in range(5):
        log.observe(T0 + 20 + 2 * i, {"broker": ("killed", T0 + 20 + 2 * i)})
        log.observe(T0 + 21 + 2 * i, {})
    assert len(log.windows) == 2  # bounded


def test_a_process_outage_the_history_holds_is_shaded_once(sd: StateDir) -> None:
    nemesis(sd, [{"t": T0 + 2, "event": "fault_start", "fault": "kill", "target": "ingest", "id": "w1"}])
    src = source(sd, Ticks())
    src.outages.observe(T0 + 3, {"ingest": ("killed by SIGKILL", T0 + 2.1)})
    src.outages.observe(T0 + 4, {"devices": ("frozen by SIGSTOP", T0 + 3.5)})
    faults = src.snapshot()["faults"]
    assert [(f["target"], f["source"]) for f in faults] == [("ingest", "history"), ("devices", "status")]


def test_ecg_window_keeps_gaps_and_clips_to_the_window(sd: StateDir) -> None:
    ecg = ecg_window(sd.ingest_db, DEV1, end=T0 + 6, seconds=5.5)  # from T0 + 0.5
    segs = ecg["segments"]
    assert [s["seq"] for s in segs] == [0, 1, 2, 4, 5]  # seq 3 never stored: a gap, not joined
    assert segs[0]["t0"] == pytest.approx(T0 + 0.5) and len(segs[0]["mv"]) == RATE // 2
    assert all(len(s["mv"]) == RATE for s in segs[1:]) and {s["rate"] for s in segs} == {RATE}
    assert max(abs(v) for v in segs[1]["mv"]) == pytest.approx(1.0, abs=0.01)  # 400 counts of 2.5 uV
    assert ecg_window(sd.ingest_db, DEV2, end=T0 + 100, seconds=10)["segments"] == []


def test_ecg_window_of_the_newest_stored_seconds(sd: StateDir) -> None:
    ecg = ecg_window(sd.ingest_db, DEV1, end=T0 + 5.001, seconds=3, newest=True)  # as LiveSource asks
    assert (ecg["follows"], ecg["start"], ecg["end"]) == ("newest", T0 + 3, T0 + 6)  # seq 5 ends at T0 + 6
    assert [s["seq"] for s in ecg["segments"]] == [4, 5]  # seq 3 (T0 + 3 .. 4) never stored: a gap
    assert ecg_window(sd.ingest_db, DEV1, end=T0 + 30, seconds=3)["segments"] == []  # "now": nothing


def test_snapshot_shows_the_chosen_device_and_the_newest_seconds_when_down(sd: StateDir) -> None:
    src = source(sd, Ticks(), wall=T0 + 3600)
    snap = src.snapshot(DEV2)
    assert snap["ecg"]["device"] == DEV2
    assert [s["seq"] for s in snap["ecg"]["segments"]] == [0, 1, 2]  # down: its last stored seconds
    assert snap["ecg"]["follows"] == "newest" and snap["ecg"]["behind_s"] == pytest.approx(3600 - 3)
    assert src.snapshot()["ecg"]["device"] == DEV1  # the first device by default


def test_stack_clock_follows_the_fleet_at_its_speed(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "fast")
    sd.root.mkdir()
    sd.save_config(StackConfig(devices=1, speed=60.0))
    sd.devices_json.parent.mkdir()
    sd.devices_json.write_text(json.dumps({"updated_at": T0, "devices": {}}))
    os.utime(sd.devices_json, (1000.0, 1000.0))
    st = StackClock(sd, wall=lambda: 1002.0).read()
    assert (st.now, st.speed) == (T0 + 120.0, 60.0)
    assert st.from_wall(1001.0) == T0 + 60.0


def test_stack_clock_of_a_scenario_is_its_shared_clock(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "run")
    sd.root.mkdir()
    sd.save_config(StackConfig(devices=1, speed=10.0, clock_origin=T0, clock_anchor_file=True))
    assert StackClock(sd).read().now == T0  # no anchor yet: simulated time stands still


def test_routes_page_assets_and_the_authenticated_state(sd: StateDir) -> None:
    client = client_for(sd)
    page = client.get("/live", headers={"Authorization": ""})
    assert page.status_code == 200 and "ledger-generated" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/live/static/live.js").status_code == 200
    assert client.get("/live/static/secrets.txt").status_code == 404
    assert client.get("/api/live/state", headers={"Authorization": ""}).status_code == 401
    assert client.get("/api/live/state", headers={"Authorization": "Bearer wrong"}).status_code == 401
    snap = client.get("/api/live/state", params={"device": DEV2}).json()
    assert snap["ecg"]["device"] == DEV2 and snap["ledger"]["stored"] == build_report(sd)["totals"]["stored"]
    assert client.get("/api/live/state", params={"device": "hc-9999"}).status_code == 404
    bad = client.get("/api/live/state", params={"devise": DEV2})
    assert bad.status_code == 400 and bad.json()["parameter"] == "devise"
