"""`python -m ingest` as a process: --help, bad arguments, ready.json, SIGTERM, kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import store_view as inspect
from ingest.__main__ import main
from lab.stack.broker import RunningBroker
from tests.conftest import wait_until
from tests.ingest.conftest import REPO, AckCollector, Publisher, ingest_argv, payload_of


def ready_doc(state: Path, pid: int) -> dict[str, object] | None:
    try:
        doc = json.loads((state / "ingest" / "ready.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return doc if doc.get("pid") == pid else None


def test_help_works() -> None:
    r = subprocess.run([sys.executable, "-m", "ingest", "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=30, check=False)
    assert r.returncode == 0
    for opt in ("--state-dir", "--host", "--port", "--acks", "--no-acks", "--client-id", "--speed"):
        assert opt in r.stdout


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "required"),
        (["--state-dir", "d", "--host", "h", "--port", "x"], "port 'x'"),
        (["--state-dir", "d", "--host", "h", "--port", "70000"], "65535"),
        (["--state-dir", "d", "--host", "h", "--port", "1", "--speed", "0"], "speed"),
        (["--state-dir", "d", "--host", "h", "--port", "1", "--client-id", ""], "client-id"),
        (["--state-dir", "d", "--host", "h", "--port", "1", "--bogus"], "--bogus"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv: list[str], words: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_an_unusable_state_dir_is_one_line_and_exit_1(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state" / "ingest" / "ingest.sqlite").mkdir(parents=True)
    assert main(["--state-dir", str(tmp_path / "state"), "--host", "127.0.0.1", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open the store" in err


@pytest.mark.broker
def test_sigterm_stops_cleanly_after_ready(broker: RunningBroker, unique: Callable[[str], str],
                                          tmp_path: Path,
                                          spawn_ingest: Callable[..., subprocess.Popen[bytes]]) -> None:
    state, cid = tmp_path / "state", unique("ingest")
    p = spawn_ingest(ingest_argv(state, broker.host, broker.port, cid))
    doc = wait_until(lambda: ready_doc(state, p.pid), 20, what="ready.json of the subprocess")
    assert doc["client_id"] == cid and isinstance(doc["at"], float)  # type: ignore[index]
    dev = unique("dev")
    pub = Publisher(broker.host, broker.port, unique("pub"))
    pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, 0))
    pub.wait_all()
    pub.close()
    db = state / "ingest" / "ingest.sqlite"
    wait_until(lambda: inspect.stored_seqs(db) == {dev: {0}}, 10, what="stored")
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0
    log = (tmp_path / "ingest.log").read_text()
    assert "subscribed to heartcheck/+/ecg" in log and "stopped (flushed=True). stats: stored=1" in log


@pytest.mark.broker
def test_kill_9_after_acks_loses_no_acked_reading(
        broker_factory: Callable[..., RunningBroker], unique: Callable[[str], str], tmp_path: Path,
        spawn_ingest: Callable[..., subprocess.Popen[bytes]]) -> None:
    # a queue big enough that Mosquitto drops nothing while ingest is dead
    broker = broker_factory(max_queued=100_000)
    state, cid = tmp_path / "state", unique("ingest")
    db = state / "ingest" / "ingest.sqlite"
    collector = AckCollector(broker.host, broker.port, unique("acks"))
    p = spawn_ingest(ingest_argv(state, broker.host, broker.port, cid, "--acks"), "first.log")
    wait_until(lambda: ready_doc(state, p.pid), 20, what="ready.json")
    devices = [unique("dev") for _ in range(4)]
    n = 600
    pub = Publisher(broker.host, broker.port, unique("pub"))
    try:
        for i in range(n):
            for d in devices:
                pub.publish(f"heartcheck/{d}/ecg", payload_of(d, i))
        wait_until(lambda: len(collector.acked()) >= 20, 20, what="the first acks")
        p.send_signal(signal.SIGKILL)
        assert p.wait(10) == -signal.SIGKILL
        stored = inspect.stored_seqs(db)  # read-only open of a store whose writer was killed
        acked = {d: collector.acked(d) for d in devices}
        assert sum(len(a) for a in acked.values()) >= 20
        for d in devices:
            assert acked[d] <= stored.get(d, set()), f"{d}: acked but not stored"
        killed_with = sum(len(s) for s in stored.values())
        assert killed_with < n * len(devices), "the kill came too late to test anything"
        pub.wait_all(60)
        # Restarted with the same client id, it gets every unacknowledged message again.
        p2 = spawn_ingest(ingest_argv(state, broker.host, broker.port, cid, "--acks"), "second.log")
        wait_until(lambda: ready_doc(state, p2.pid), 20, what="ready.json of the restart")
        wait_until(lambda: inspect.stored_seqs(db) == {d: set(range(n)) for d in devices}, 40,
                   what="every reading stored after the restart")
        # An ack lost with the killed process (PUBACK sent, ack not) is recovered the way a
        # device recovers it: it resends what was not acknowledged, and gets a duplicate's ack.
        pub2 = Publisher(broker.host, broker.port, unique("pub"))
        for d in devices:
            for i in sorted(set(range(n)) - collector.acked(d)):
                pub2.publish(f"heartcheck/{d}/ecg", payload_of(d, i))
        pub2.wait_all()
        pub2.close()
        wait_until(lambda: all(collector.acked(d) == set(range(n)) for d in devices), 20,
                   what="every reading acked after the restart (and resends)")
        assert inspect.totals(db)["stored"] == n * len(devices)
        p2.send_signal(signal.SIGTERM)
        assert p2.wait(20) == 0
    finally:
        pub.close()
        collector.close()
