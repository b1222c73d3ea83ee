"""One fleet in several processes: `python -m devices --procs N` (devices/supervisor.py).

A device behaves the same however the fleet is split; the state dir's readers (devices.json,
profiles.json, the outbox, the history) see one fleet; SIGTERM stops every process with exit
0; a kill -9 of the supervisor leaves no child running; a child that dies alone stops the rest.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devices.fleet import slice_bounds
from devices.outbox_view import device_summaries, ledger_sets
from devices.profiles_file import read_profiles
from ecgcore.files import read_json
from lab.history import Boot, Generated
from lab.history.load import load_history
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from tests.devices.conftest import Collector

ROOT = Path(__file__).resolve().parents[2]
N = 9


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `python -m devices`; kill what is left (the supervisor's children die with it)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log: str = "fleet.log") -> subprocess.Popen[bytes]:
        with (tmp_path / log).open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "devices", *args], cwd=ROOT,
                                    stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def args(state: Path, broker: RunningBroker, prefix: str, devices: int, *extra: str) -> list[str]:
    return ["--state-dir", str(state), "--host", broker.host, "--port", str(broker.port),
            "--devices", str(devices), "--id-prefix", prefix, "--ecg-source", "synthetic",
            "--delivery", "broker-ack", "--chunk-seconds", "0.2", "--seed", "7", *extra]


def state_of(pid: int) -> str:
    """The /proc state letter; "X" when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat[stat.rindex(")") + 2]


def alive(pid: int) -> bool:
    """Running or frozen (a zombie waiting for its reaper is not)."""
    return state_of(pid) not in "ZXx"


def online(state: Path, pid: int, n: int) -> bool:
    doc = read_json(state / "fleet" / "devices.json") or {}
    devs = doc.get("devices", {})
    return doc.get("pid") == pid and len(devs) == n and all(d["online"] for d in devs.values())


def child_pids(state: Path, procs: int) -> list[int]:
    """The slices' pids, from their fleet/devices-K.json."""
    docs = [read_json(state / "fleet" / f"devices-{k}.json") or {} for k in range(1, procs + 1)]
    return [int(d["pid"]) for d in docs]


def received(sub: Collector, prefix: str, n: int, at_least: int) -> bool:
    got = sub.by_device()
    return len(got) == n and all(len({r.seq for r in rs}) >= at_least for rs in got.values()) \
        and all(d.startswith(prefix) for d in got)


def outbox_patients(state: Path) -> dict[str, tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{state / 'fleet' / 'outbox.sqlite'}?mode=ro", uri=True)
    try:
        return {r[0]: tuple(r[1:]) for r in
                db.execute("SELECT device_id, hr_bpm, hrv, noise, seed, boot_epoch FROM devices")}
    finally:
        db.close()


def without_since(profiles: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    assert profiles is not None
    return {d: {k: v for k, v in e.items() if k != "since"} for d, e in profiles.items()}


def test_slices_are_contiguous_and_cover_the_fleet() -> None:
    for devices in (1, 2, 9, 10, 6000, 10_001):
        for procs in range(1, min(devices, 16) + 1):
            parts = [slice_bounds(devices, (k, procs)) for k in range(1, procs + 1)]
            assert parts[0][0] == 0 and parts[-1][1] == devices
            assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
            sizes = [hi - lo for lo, hi in parts]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert slice_bounds(9, None) == (0, 9)


@pytest.mark.broker
def test_three_processes_are_one_fleet(
    tmp_path: Path, broker: RunningBroker, broker_factory: Callable[..., RunningBroker],
    unique: Callable[[str], str], collector: Callable[..., Collector],
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    prefix = unique("hc")
    one_state, three_state = tmp_path / "one", tmp_path / "three"
    # the reference: the same fleet in one process, on a broker of its own
    ref_broker = broker_factory()
    ref = collector(ref_broker, unique("sub"), "heartcheck/+/ecg")
    single = spawn(*args(one_state, ref_broker, prefix, N), log="one.log")
    wait_until(lambda: received(ref, prefix, N, 5), 60, what="5 readings per device (1 process)")
    single.send_signal(signal.SIGTERM)
    assert single.wait(30) == 0

    sub = collector(broker, unique("sub"), "heartcheck/+/ecg")
    sup = spawn(*args(three_state, broker, prefix, N, "--procs", "3"))
    wait_until(lambda: online(three_state, sup.pid, N), 60, what="9 devices online under the supervisor")
    children = child_pids(three_state, 3)
    assert len(set(children)) == 3 and sup.pid not in children
    wait_until(lambda: received(sub, prefix, N, 5), 60, what="5 readings per device (3 processes)")
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(60) == 0
    wait_until(lambda: not any(alive(p) for p in children), 10, what="every slice gone")

    ids = [f"{prefix}-{i:04d}" for i in range(N)]
    for run in (ref, sub):
        got = run.by_device()
        assert sorted(got) == ids
        for device_id, readings in got.items():
            seqs = sorted({r.seq for r in readings})
            assert seqs == list(range(len(seqs))), device_id  # consecutive from 0
            assert {r.boot_epoch for r in readings} == {1}
    # the same patients: profiles.json (but for `since`, the start time) and the outbox's columns
    profiles = [without_since(read_profiles(s / "fleet")) for s in (one_state, three_state)]
    assert profiles[0] == profiles[1] and sorted(profiles[0]) == ids
    assert outbox_patients(three_state) == outbox_patients(one_state)

    doc = read_json(three_state / "fleet" / "devices.json")
    assert doc["pid"] == sup.pid and doc["delivery"] == "broker-ack"
    assert sorted(doc["devices"]) == ids and not any(d["online"] for d in doc["devices"].values())
    check_readers(three_state, ids)
    log = (tmp_path / "fleet.log").read_text()
    assert all(f"[{k}/3] fleet stopped" in log for k in (1, 2, 3))
    assert "fleet supervisor stopped (clean)" in log


def check_readers(state: Path, ids: list[str]) -> None:
    """The outbox (devices/outbox_view.py) and the history (lab/history) name all 9 devices,
    and every history line is whole (no two processes' writes interleaved)."""
    sums = device_summaries(state / "fleet" / "outbox.sqlite")
    assert [s["device_id"] for s in sums] == ids
    assert all(s["boot_epoch"] == 1 and s["generated"] >= 5 for s in sums)
    sets = ledger_sets(state / "fleet" / "outbox.sqlite")
    raw = (state / "history" / "devices.jsonl").read_text()
    lines = [ln for ln in raw.splitlines() if ln]
    assert all(isinstance(json.loads(ln), dict) for ln in lines)
    hist = load_history(state, beats=False)
    assert not hist.skipped
    for device_id in ids:
        mine = [e for e in hist.device_events if e.dev == device_id]
        assert [(e.boot, e.next_seq) for e in mine if isinstance(e, Boot)] == [(1, 0)]
        generated = [e.seq for e in mine if isinstance(e, Generated)]
        assert generated == list(range(sets[device_id]["generated"]))  # stopped gracefully


@pytest.mark.broker
def test_kill_9_of_the_supervisor_leaves_no_slice_running(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    state = tmp_path / "state"
    sup = spawn(*args(state, broker, unique("hc"), 6, "--procs", "3"))
    wait_until(lambda: online(state, sup.pid, 6), 60, what="6 devices online")
    children = child_pids(state, 3)
    assert all(alive(p) for p in children)
    sup.send_signal(signal.SIGKILL)
    assert sup.wait(10) == -signal.SIGKILL
    wait_until(lambda: not any(alive(p) for p in children), 10, what="the slices killed with it")
    assert len(device_summaries(state / "fleet" / "outbox.sqlite")) == 6


@pytest.mark.broker
def test_a_slice_that_dies_stops_the_fleet_non_zero(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    state = tmp_path / "state"
    sup = spawn(*args(state, broker, unique("hc"), 4, "--procs", "2"))
    wait_until(lambda: online(state, sup.pid, 4), 60, what="4 devices online")
    children = child_pids(state, 2)
    os.kill(children[1], signal.SIGKILL)
    assert sup.wait(60) == 1
    assert not any(alive(p) for p in children)
    log = (tmp_path / "fleet.log").read_text()
    assert "slice 2/2" in log and "signal SIGKILL" in log and "[1/2] fleet stopped" in log


@pytest.mark.broker
def test_sigstop_freezes_every_slice_and_sigcont_resumes_them(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    state = tmp_path / "state"
    db = state / "fleet" / "outbox.sqlite"
    sup = spawn(*args(state, broker, unique("hc"), 4, "--procs", "2"))
    wait_until(lambda: online(state, sup.pid, 4), 60, what="4 devices online")
    children = child_pids(state, 2)
    sup.send_signal(signal.SIGSTOP)
    wait_until(lambda: all(state_of(p) in "Tt" for p in children), 10, what="the slices frozen too")
    sup.send_signal(signal.SIGCONT)
    wait_until(lambda: all(state_of(p) in "RS" for p in children), 10, what="the slices running again")
    before = {s["device_id"]: s["generated"] for s in device_summaries(db)}
    wait_until(lambda: all(s["generated"] >= before[s["device_id"]] + 3 for s in device_summaries(db)),
               20, what="3 more readings per device")
    sup.send_signal(signal.SIGSTOP)  # then stopped as `ecgpipe down` stops a frozen component
    wait_until(lambda: all(state_of(p) in "Tt" for p in children), 10, what="the slices frozen again")
    sup.send_signal(signal.SIGTERM)
    sup.send_signal(signal.SIGCONT)
    assert sup.wait(15) == 0  # within the supervisor's deadline: no slice needed SIGKILL
    assert not any(alive(p) for p in children)
    assert "did not stop" not in (tmp_path / "fleet.log").read_text()


@pytest.mark.parametrize("extra", [["--procs", "0"], ["--procs", "17"], ["--procs", "5"],
                                   ["--slice", "3/2"], ["--procs", "2", "--slice", "1/2"]])
def test_bad_procs_and_slices_are_one_line(tmp_path: Path, extra: list[str]) -> None:
    res = subprocess.run([sys.executable, "-m", "devices", "--state-dir", str(tmp_path), "--host",
                          "127.0.0.1", "--port", "1", "--devices", "4", "--delivery", "broker-ack",
                          *extra], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert not (tmp_path / "fleet").exists()


@pytest.mark.broker
@pytest.mark.slow
def test_up_with_fleet_procs(tmp_path: Path) -> None:
    from tests.lab.test_cli import cj, cli

    state = tmp_path / "state"
    cli(state, "up", "--devices", "6", "--fleet-procs", "2", "--insecure")
    try:
        st = cj(state, "status")
        assert st["devices"]["state"] == "running" and st["devices"]["online"] == 6
        assert len(st["device_states"]) == 6
        pid = st["devices"]["pid"]
        wait_until(lambda: sum(d["generated"] for d in cj(state, "inspect", "devices")["devices"]) >= 30,
                   30, what="readings from both slices")
        assert len(cj(state, "inspect", "devices")["devices"]) == 6
        children = child_pids(state, 2)
    finally:
        cli(state, "down")
    assert not alive(pid) and not any(alive(p) for p in children)
    t = cj(state, "report")["totals"]
    assert t["generated"] == t["stored"] + t["buffered"] + t["evicted"] + t["lost"]
    assert t["lost"] == 0 and t["generated"] >= 30
