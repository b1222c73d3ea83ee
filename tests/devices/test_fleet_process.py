"""`python -m devices` as a separate process: kill -9, restart, 1,000 devices, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devices.outbox_view import device_summaries, ledger_sets
from ecgcore.files import read_json, read_jsonl
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from tests.devices.conftest import Collector
from wire import decode_status

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `python -m devices` with the given arguments; kill what is left at the end."""
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


def fleet_args(state: Path, broker: RunningBroker, prefix: str, devices: int, *extra: str) -> list[str]:
    return ["--state-dir", str(state), "--host", broker.host, "--port", str(broker.port),
            "--devices", str(devices), "--id-prefix", prefix, "--ecg-source", "synthetic",
            *extra]


def all_online(path: Path, n: int, boot_epoch: int | None = None) -> bool:
    doc = read_json(path) or {"devices": {}}
    devs = doc["devices"].values()
    return len(devs) == n and all(
        d["online"] and (boot_epoch is None or d["boot_epoch"] == boot_epoch) for d in devs)


def test_kill_9_keeps_the_outbox_and_the_seq_goes_on(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector], spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    prefix = unique("hc")
    state = tmp_path / "state"
    db = state / "fleet" / "outbox.sqlite"
    devices_json = state / "fleet" / "devices.json"
    sub = collector(broker, unique("sub"), "heartcheck/+/ecg")
    # end-to-end with no ingest: nothing is ever acked, so every reading stays buffered
    args = fleet_args(state, broker, prefix, 3, "--delivery", "end-to-end",
                      "--chunk-seconds", "0.1", "--ack-timeout", "60")
    first = spawn(*args)
    wait_until(lambda: len(sums := device_summaries(db)) == 3
               and all(s["generated"] >= 10 for s in sums), 20, what="10 readings per device")
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    before = ledger_sets(db)
    assert len(before) == 3
    for s in before.values():  # every committed reading is still buffered
        assert s["buffered"] == set(range(s["generated"])) and s["generated"] >= 10

    second = spawn(*args)
    wait_until(lambda: all_online(devices_json, 3, boot_epoch=2), 20, what="reboot online")
    wait_until(lambda: all(ledger_sets(db)[d]["generated"] >= before[d]["generated"] + 5
                           for d in before), 20, what="5 new readings per device")
    assert [s["boot_epoch"] for s in device_summaries(db)] == [2, 2, 2]
    after = ledger_sets(db)
    for device_id, old in before.items():
        assert old["buffered"] <= after[device_id]["buffered"]  # the rows survived the kill
    wait_until(lambda: all(any(r.boot_epoch == 2 for r in rs) for rs in sub.by_device().values())
               and len(sub.by_device()) == 3, 10, what="readings of the second boot")
    for device_id, rs in sub.by_device().items():
        boot2 = [r.seq for r in rs if r.boot_epoch == 2]
        # no seq of the first boot is reused: the second boot starts exactly where it ended
        assert min(boot2) == before[device_id]["generated"]
        assert all(r.seq < before[device_id]["generated"] for r in rs if r.boot_epoch == 1)

    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
    assert not any(d["online"] for d in read_json(devices_json)["devices"].values())
    assert "fleet stopped" in (tmp_path / "fleet.log").read_text()
    check_history_across_the_kill(state / "history" / "devices.jsonl", before, ledger_sets(db))


def check_history_across_the_kill(path: Path, before: dict[str, dict[str, Any]],
                                  final: dict[str, dict[str, Any]]) -> None:
    """history/devices.jsonl across a kill -9 and a restart (docs/architecture.md)."""
    events = read_jsonl(path)
    for device_id, old in before.items():
        mine = [e for e in events if e["dev"] == device_id]
        boots = [(e["boot"], e["next_seq"]) for e in mine if e["ev"] == "boot"]
        # a new boot event with the next boot epoch, starting at the last committed seq
        assert boots == [(1, 0), (2, old["generated"])], device_id
        second_boot = next(i for i, e in enumerate(mine) if e["ev"] == "boot" and e["boot"] == 2)
        generated = [(e["boot"], e["seq"]) for e in mine if e["ev"] == "generated"]
        assert len(set(generated)) == len(generated)  # no (boot, seq) generated twice
        boot1 = [s for b, s in generated if b == 1]
        boot2 = [s for b, s in generated if b == 2]
        # boot 1: every committed seq, maybe a few more the kill caught before their commit
        assert boot1 == list(range(len(boot1))) and len(boot1) >= old["generated"]
        # boot 2 (stopped gracefully): exactly the seqs it committed, none of boot 1's
        assert boot2 == list(range(old["generated"], final[device_id]["generated"]))
        # the old rows went out again under their own boot epoch, from the backlog
        resent = [e for e in mine[second_boot:] if e["ev"] == "published" and e["boot"] == 1]
        assert {e["seq"] for e in resent} >= set(range(old["generated"]))
        assert all(e["backlog"] for e in resent)


def test_a_thousand_devices_from_one_process(
    tmp_path: Path, broker: RunningBroker, unique: Callable[[str], str],
    collector: Callable[..., Collector], spawn: Callable[..., subprocess.Popen[bytes]],
) -> None:
    n = 1000
    prefix = unique("k")
    state = tmp_path / "state"
    devices_json = state / "fleet" / "devices.json"
    proc = spawn(*fleet_args(state, broker, prefix, n, "--delivery", "broker-ack",
                             "--chunk-seconds", "30"))
    wait_until(lambda: all_online(devices_json, n), 45, interval=0.2, what="1,000 devices online")
    fds = len(list(Path(f"/proc/{proc.pid}/fd").iterdir()))
    # one socket per client, plus stdio, the epoll fd and SQLite's db/wal/shm
    assert n <= fds <= n + 30, fds
    status = collector(broker, unique("sub"), f"heartcheck/{prefix}-0999/status")
    wait_until(lambda: any(decode_status(p)["state"] == "online" for _, p, _ in status.snapshot()),
               10, what="a retained online status")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    doc = read_json(devices_json)
    assert len(doc["devices"]) == n and not any(d["online"] for d in doc["devices"].values())
    log = (tmp_path / "fleet.log").read_text()
    assert f"fleet starting: {n} devices" in log and f"online {n}/{n}" in log
