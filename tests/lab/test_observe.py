"""lab/observe: the log-line parser and the merged `logs` stream (on hand-made log files), following
appended, truncated and late files, the refreshing view on a pipe, the rich tables, and `tail`'s
decoding (unit) and subscription (a real Mosquitto)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console

from lab.errors import ComponentError, ConfigError, LabError, StateDirError
from lab.observe import live, views
from lab.observe.logs import parse_line, run_logs
from lab.observe.tail import Doc, HeartWindow, describe, format_doc, heart_rate, run_tail, topics_for
from lab.observe.tap import Arrival
from lab.stack.broker import RunningBroker
from lab.stack.ports import free_port
from lab.stack.statedir import StackConfig, StateDir
from tests.conftest import wait_until
from wire import Reading, encode_ack, encode_reading, encode_status

T0 = 1796045840.0  # 2026-11-30T13:37:20Z


def local(y: int, mo: int, d: int, h: int, mi: int, s: int) -> float:
    return time.mktime((y, mo, d, h, mi, s, 0, 0, -1))


class Out(io.StringIO):
    """A StringIO one thread writes while another reads it."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        with self._lock:
            return super().write(s)

    def text(self) -> str:
        with self._lock:
            return self.getvalue()


# ---- the parser ------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "t", "msg"), [
    ("1796045840: Note: x", T0, "Note: x"),
    ("ingest 1796045840.685 stored 3", T0 + 0.685, "stored 3"),
    ("2026-11-30T13:37:21.703+00:00 online 2/2", T0 + 1.703, "online 2/2"),
    ("2026-11-30T13:37:21.703Z online 2/2", T0 + 1.703, "online 2/2"),
    ("2026-11-30T14:37:21.5+01:00 zoned", T0 + 1.5, "zoned"),
    ("2026-11-30T13:37:21.123456789Z nanoseconds", T0 + 1.123456, "nanoseconds"),
])
def test_parse_line_reads_each_zoned_style(line: str, t: float, msg: str) -> None:
    parsed = parse_line(line)
    assert parsed is not None and parsed[0] == pytest.approx(t, abs=1e-6) and parsed[1] == msg


def test_parse_line_reads_naive_times_as_local_time() -> None:
    assert parse_line("--- 2026-11-30T13:37:20 start: python -m ingest") == (
        local(2026, 11, 30, 13, 37, 20), "--- start: python -m ingest")
    assert parse_line("2026-11-30T13:37:20: mosquitto version 2.0.11 running") == (
        local(2026, 11, 30, 13, 37, 20), "mosquitto version 2.0.11 running")


@pytest.mark.parametrize("line", [
    "proxy ingest: 127.0.0.1:1 -> 127.0.0.1:2", "Traceback (most recent call last):", '  File "x.py", line 3',
    "12: too short an epoch", "2026-13-45T99:00:00Z bad"])
def test_parse_line_finds_no_time_in_untimed_lines(line: str) -> None:
    assert parse_line(line) is None


# ---- the merged stream -----------------------------------------------------------------------


@pytest.fixture
def logs_dir(tmp_path: Path) -> StateDir:
    """A stopped stack's state dir with one log in each style (times in seconds after T0)."""
    sd = StateDir(tmp_path / "state")
    sd.save_config(StackConfig(secure=False))  # the insecure broker fixture
    files = {
        "broker/broker.log": ["1796045840: Note: broker stderr"],
        "broker/mosquitto.log": ["2026-11-30T13:37:23Z: New client connected as hc-0000"],
        "ingest/ingest.log": ["ingest 1796045841.500 starting", "ingest 1796045844.500 stored 1"],
        "fleet/fleet.log": ["2026-11-30T13:37:22.000+00:00 fleet starting",
                            "Traceback (most recent call last):", "ValueError: boom",
                            "2026-11-30T13:37:25.250Z fleet stopped"],
        "proxy/proxy-ingest.log": ["proxy ingest: up", "2026-11-30T13:37:24.000Z cut"],
    }
    for rel, lines in files.items():
        path = sd.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{ln}\n" for ln in lines))
    return sd


def logs_of(sd: StateDir, component: str | None = None, lines: int | None = None) -> list[str]:
    out = io.StringIO()
    assert run_logs(sd, component, follow=False, lines=lines, out=out) == 0
    return out.getvalue().splitlines()


def test_logs_merges_every_file_in_time_order_in_one_style(logs_dir: StateDir) -> None:
    assert logs_of(logs_dir) == [
        "2026-11-30T13:37:20.000Z broker         Note: broker stderr",
        "2026-11-30T13:37:21.500Z ingest         starting",
        "2026-11-30T13:37:22.000Z devices        fleet starting",
        # an untimed line takes the time of the line before it
        "2026-11-30T13:37:22.000Z devices        Traceback (most recent call last):",
        "2026-11-30T13:37:22.000Z devices        ValueError: boom",
        "2026-11-30T13:37:23.000Z broker         New client connected as hc-0000",
        "2026-11-30T13:37:24.000Z proxy-ingest   proxy ingest: up",  # the file's first time
        "2026-11-30T13:37:24.000Z proxy-ingest   cut",
        "2026-11-30T13:37:24.500Z ingest         stored 1",
        "2026-11-30T13:37:25.250Z devices        fleet stopped",
    ]


def test_logs_shows_the_last_n_lines_and_one_component(logs_dir: StateDir) -> None:
    last = [ln.split(" ", 2)[2].strip() for ln in logs_of(logs_dir, lines=2)]
    assert last == ["stored 1", "fleet stopped"]
    assert logs_of(logs_dir, lines=0) == []
    broker = logs_of(logs_dir, "broker")
    assert len(broker) == 2 and all(ln.split()[1] == "broker" for ln in broker)  # both broker files
    assert logs_of(logs_dir, "fleet") == logs_of(logs_dir, "devices")
    with pytest.raises(ConfigError, match="unknown component 'mqtt'"):
        logs_of(logs_dir, "mqtt")


def test_an_untimed_file_takes_its_mtime(logs_dir: StateDir) -> None:
    watch = logs_dir.component("watch").logfile
    watch.parent.mkdir(parents=True)
    watch.write_text("watch: $SYS of 127.0.0.1:40183\n")
    os.utime(watch, (T0 + 3.5, T0 + 3.5))
    assert "2026-11-30T13:37:23.500Z watch          watch: $SYS of 127.0.0.1:40183" in logs_of(logs_dir)


def test_a_whole_second_stamp_keeps_its_file_in_order(logs_dir: StateDir) -> None:
    log = logs_dir.component("ingest").logfile
    with log.open("a") as f:  # ingest restarted in the second of its last line
        f.write("--- 2026-11-30T13:37:24 start: python -m ingest\n2026-11-30T13:37:24.900Z starting\n")
    lines = logs_of(logs_dir, "ingest")
    assert lines[-3:] == ["2026-11-30T13:37:24.500Z ingest         stored 1",
                          "2026-11-30T13:37:24.500Z ingest         --- start: python -m ingest",
                          "2026-11-30T13:37:24.900Z ingest         starting"]
    stamps = [ln.split()[0] for ln in logs_of(logs_dir)]
    assert stamps == sorted(stamps)


def test_an_unreadable_log_is_reported_once_and_skipped(logs_dir: StateDir) -> None:
    log = logs_dir.component("ingest").logfile
    log.unlink()
    log.mkdir()  # a directory in the log's place
    lines = logs_of(logs_dir)
    bad = [ln for ln in lines if "ecgpipe: cannot read" in ln]
    assert len(bad) == 1 and str(log) in bad[0] and bad[0].split()[1] == "ingest", lines
    assert len(lines) == 9  # every other line is still there


def test_logs_without_a_stack_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(StateDirError, match="does not exist"):
        logs_of(StateDir(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StateDirError, match="no stack in"):
        logs_of(StateDir(tmp_path / "empty"))
    (tmp_path / "file").write_text("")
    with pytest.raises(StateDirError, match="not a directory"):
        logs_of(StateDir(tmp_path / "file"))


# ---- following -------------------------------------------------------------------------------


@pytest.fixture
def following(logs_dir: StateDir) -> Iterator[Out]:
    """`logs -f` running in a thread on logs_dir; stopped (and joined) after the test."""
    out, stop = Out(), threading.Event()
    thread = threading.Thread(target=run_logs, args=(logs_dir, None),
                              kwargs={"follow": True, "lines": 1, "out": out, "stop": stop.is_set,
                                      "poll_s": 0.01})
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_follow_prints_appended_lines_and_picks_up_new_files(logs_dir: StateDir, following: Out) -> None:
    wait_until(lambda: "fleet stopped" in following.text(), 10, what="the last line of the first pass")
    assert "stored 1" not in following.text()  # -n 1
    ingest = logs_dir.component("ingest").logfile
    with ingest.open("a") as f:
        f.write("2026-11-30T13:37:30.000Z reconnected\n2026-11-30T13:37:31.000Z half a li")
        f.flush()
        wait_until(lambda: "reconnected" in following.text(), 10, what="an appended line")
        assert "half a li" not in following.text()  # a line is printed once it is complete
        f.write("ne\n")
    wait_until(lambda: "13:37:31.000Z ingest         half a line" in following.text(), 10,
               what="the completed line")
    watch = logs_dir.component("watch").logfile  # did not exist when logs -f started
    watch.parent.mkdir(parents=True)
    watch.write_text("--- 2026-11-30T13:37:40 start: watch\n")
    wait_until(lambda: "watch          --- start: watch" in following.text(), 10, what="a new file")


def test_follow_rereads_a_truncated_or_replaced_file(logs_dir: StateDir, following: Out) -> None:
    wait_until(lambda: "fleet stopped" in following.text(), 10, what="the first pass")
    fleet = logs_dir.component("devices").logfile
    fleet.write_text("2026-11-30T13:38:00.000Z after truncation\n")  # shorter than before
    wait_until(lambda: "after truncation" in following.text(), 10, what="the truncated file's line")
    fresh = fleet.with_suffix(".new")
    fresh.write_text("2026-11-30T13:38:01.000Z rotated in, a longer first line than the file had before\n")
    fresh.replace(fleet)
    wait_until(lambda: "rotated in" in following.text(), 10, what="the replaced file's line")
    assert following.text().count("after truncation") == 1


# ---- the refreshing view ---------------------------------------------------------------------


def test_watch_on_a_pipe_prints_each_frame_after_a_stamp() -> None:
    frames = iter(["status [ok] 1", "status [ok] 2"])
    out, naps = io.StringIO(), list[float]()
    assert live.watch(lambda: next(frames), interval_s=0.5, count=2, out=out, sleep=naps.append,
                      now=lambda: T0) == 0
    assert out.getvalue() == ("--- 2026-11-30T13:37:20Z\nstatus [ok] 1\n"
                              "--- 2026-11-30T13:37:20Z\nstatus [ok] 2\n")
    assert naps == [0.5]  # between frames, not after the last


def test_watch_shows_a_lab_error_as_the_frame_and_goes_on() -> None:
    calls = []

    def render() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise StateDirError("no stack in /x")
        return "back"

    out = io.StringIO()
    assert live.watch(render, interval_s=0.01, count=2, out=out) == 0
    assert "ecgpipe: no stack in /x" in out.getvalue() and out.getvalue().endswith("back\n")
    with pytest.raises(LabError, match="interval"):
        live.watch(render, interval_s=0, count=1, out=out)


def plain(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=160, no_color=True)
    console.print(renderable)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_the_tables_show_what_needs_a_look() -> None:
    comp = {"pid": 7, "state": "running", "last_signal": None}
    doc = {"state_dir": "/s", "delivery": "end-to-end",
           "broker": {**comp, "host": "127.0.0.1", "port": 40183, "max_queued": 1000},
           "ingest": {**comp, "state": "stopped", "last_signal": "STOP"}, "watch": comp,
           "devices": {**comp, "online": 1, "count": 2},
           "proxy-ingest": {**comp, "listen_port": 1, "upstream_port": 40183, "connections": 1,
                            "fault": {"fault": "cut", "describe": "cut for 30s", "remaining_s": 12.3}},
           "proxy-devices": {**comp, "listen_port": 2, "upstream_port": 40183, "connections": 2,
                             "fault": None},
           "device_states": {"hc-0000": {"online": True}, "hc-0001": {"online": False}},
           "devices_error": "fleet/devices.json is truncated"}
    text = plain(views.status_table(doc))
    assert "stopped (last signal STOP)" in text and "CUT for 30s, 12 s left" in text
    assert "warning: devices online unknown: fleet/" in text
    assert "devices: 1/2 online; OFFLINE: hc-0001" in text
    rows = [{"device_id": "hc-0000", "buffered": 3, "oldest_seq": 4, "newest_seq": 6,
             "oldest_age_s": 2.5, "bytes": 900, "evicted": 0}]
    totals = {"buffered": 3, "bytes": 900, "evicted": 0}
    text = plain(views.devices_table({"devices": rows, "totals": totals}))
    assert "hc-0000" in text and "2.5 s" in text
    assert "total buffered 3 readings (900 bytes), evicted 0" in text


# ---- tail: decoding --------------------------------------------------------------------------


def beat_train(seconds: float, bpm: float, rate: int = 250) -> np.ndarray:
    """A synthetic ECG in int16 counts of 2.5 µV: narrow 1-mV R waves at `bpm`, plus a slow wave."""
    t = np.arange(int(seconds * rate)) / rate
    period = 60.0 / bpm
    mv = np.exp(-(((t % period) - 0.2) ** 2) / (2 * 0.012**2)) + 0.15 * np.sin(2 * np.pi * t / period)
    return np.round(mv * 1000 / 2.5).astype(np.int16)


def reading(device: str, seq: int, *, seconds: float = 4.0, flags: int = 0) -> Reading:
    return Reading(device_id=device, boot_epoch=2, seq=seq, captured_at=T0, sample_rate_hz=250,
                   gain_uv=2.5, samples=beat_train(seconds, 60.0), flags=flags)


def test_describe_decodes_a_reading_with_its_heart_rate() -> None:
    doc = describe(Arrival(T0 + 5, "heartcheck/hc-7/ecg", encode_reading(reading("hc-7", 41, flags=1))))
    assert doc["kind"] == "reading" and doc["hr_bpm"] == pytest.approx(60, abs=1)
    assert (doc["device_id"], doc["boot_epoch"], doc["seq"], doc["samples"]) == ("hc-7", 2, 41, 1000)
    line = format_doc(doc)
    assert line.startswith("2026-11-30T13:37:25.000Z hc-7") and "seq 41" in line and "HR  60" in line
    assert "captured 2026-11-30T13:37:20.000Z" in line and line.endswith("backlog")
    short = describe(Arrival(T0, "heartcheck/hc-7/ecg", encode_reading(reading("hc-7", 1, seconds=0.5))))
    assert short["hr_bpm"] is None and "HR   -" in format_doc(short)
    assert heart_rate(beat_train(10, 90) * 2.5 / 1000, 250) == pytest.approx(90, abs=1)


def test_a_short_chunk_is_measured_with_the_chunk_before_it() -> None:
    train = beat_train(3, 60.0)  # beats at 0.2 s, 1.2 s, 2.2 s
    hearts = HeartWindow()

    def chunk(seq: int, start: int, **kw: int) -> Doc:
        r = Reading(device_id="hc-1", boot_epoch=kw.get("boot", 2), seq=seq, captured_at=T0 + start,
                    sample_rate_hz=250, gain_uv=2.5, samples=train[start * 250:(start + 1) * 250])
        return describe(Arrival(T0, "heartcheck/hc-1/ecg", encode_reading(r)), hearts)

    assert chunk(0, 0)["hr_bpm"] is None  # one beat, nothing before it
    second = chunk(1, 1)
    assert second["hr_bpm"] == pytest.approx(60, abs=1) and second["hr_over_s"] == 2.0
    assert chunk(3, 2)["hr_bpm"] is None  # not the next seq: alone
    assert chunk(4, 0, boot=3)["hr_bpm"] is None  # another boot


def test_describe_reports_malformed_payloads_acks_and_statuses() -> None:
    bad = describe(Arrival(T0, "heartcheck/hc-7/ecg", b"garbage"))
    assert format_doc(bad).startswith("2026-11-30T13:37:20.000Z MALFORMED heartcheck/hc-7/ecg bad-magic")
    assert format_doc(bad).endswith("(7 bytes)")
    ack = describe(Arrival(T0, "heartcheck/hc-7/ack", encode_ack("hc-7", [(0, 4), (6, 6)])))
    assert "ack   stored seq 0-4, 6" in format_doc(ack)
    st = describe(Arrival(T0, "heartcheck/hc-7/status", encode_status("hc-7", "offline", 2, T0)))
    assert "hc-7       status OFFLINE" in format_doc(st)
    other = describe(Arrival(T0, "heartcheck/hc-8/ecg", encode_reading(reading("hc-7", 1))))
    assert "TOPIC NAMES hc-8" in format_doc(other)


def test_tail_checks_the_device_id() -> None:
    assert topics_for("hc-0001", show_all=False) == ["heartcheck/hc-0001/ecg"]
    assert len(topics_for(None, show_all=True)) == 4
    with pytest.raises(ConfigError, match="--device"):
        topics_for("a/b", show_all=False)


# ---- tail against a real broker --------------------------------------------------------------


def stack_at(tmp_path: Path, port: int) -> StateDir:
    sd = StateDir(tmp_path / "state")
    sd.save_config(StackConfig(port=port, secure=False))
    return sd


@pytest.fixture
def publisher(broker: RunningBroker, unique: Callable[[str], str]) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"), protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def tailing(sd: StateDir, device: str | None, out: Out, stop: threading.Event,
            **kw: object) -> threading.Thread:
    thread = threading.Thread(target=run_tail, args=(sd, device),
                              kwargs={"count": None, "as_json": False, "out": out, "stop": stop.is_set, **kw})
    thread.start()
    return thread


def publish_until(client: mqtt.Client, messages: list[tuple[str, bytes]], cond: Callable[[], bool]) -> None:
    """Publish the messages again each poll until cond(): tail subscribes in its own thread, so the
    first ones may come before its subscription."""

    def probe() -> bool:
        if cond():
            return True
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        return False

    wait_until(probe, 15, interval=0.1, what="tail showing the published messages")


@pytest.mark.broker
def test_tail_decodes_readings_and_reports_garbage(broker: RunningBroker, publisher: mqtt.Client,
                                                  tmp_path: Path, unique: Callable[[str], str]) -> None:
    dev, other = unique("hc"), unique("hc")
    sd, out, stop = stack_at(tmp_path, broker.port), Out(), threading.Event()
    thread = tailing(sd, None, out, stop)
    try:
        msgs = [(f"heartcheck/{dev}/ecg", encode_reading(reading(dev, 17))),
                (f"heartcheck/{dev}/ecg", b"\x00junk")]
        publish_until(publisher, msgs, lambda: "MALFORMED" in out.text() and "seq 17" in out.text())
    finally:
        stop.set()
        thread.join(10)
    line = next(ln for ln in out.text().splitlines() if f" {dev} " in ln)
    assert "seq 17" in line and "boot 2" in line and "HR  60" in line
    assert f"MALFORMED heartcheck/{dev}/ecg bad-magic" in out.text() and "(5 bytes)" in out.text()

    # --device: another device's readings are not shown; --json: one object per line, count stops it
    out, stop = Out(), threading.Event()
    thread = tailing(sd, dev, out, stop, as_json=True)
    try:
        msgs = [(f"heartcheck/{other}/ecg", encode_reading(reading(other, 1))),
                (f"heartcheck/{dev}/ecg", encode_reading(reading(dev, 18)))]
        publish_until(publisher, msgs, lambda: '"seq": 18' in out.text())
    finally:
        stop.set()
        thread.join(10)
    rows = [json.loads(ln) for ln in out.text().splitlines()]
    assert rows and {r["device_id"] for r in rows} == {dev} and rows[0]["hr_bpm"] == pytest.approx(60, abs=1)


@pytest.mark.broker
def test_tail_stops_after_count_readings(broker: RunningBroker, publisher: mqtt.Client, tmp_path: Path,
                                         unique: Callable[[str], str]) -> None:
    dev, out = unique("hc"), Out()
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(run_tail(
        stack_at(tmp_path, broker.port), dev, count=2, as_json=False, out=out, timeout_s=30)))
    thread.start()
    publish_until(publisher, [(f"heartcheck/{dev}/ecg", encode_reading(reading(dev, 3)))], lambda: bool(done))
    thread.join(10)
    assert done == [0] and out.text().count(f" {dev} ") == 2


def test_tail_without_a_broker_is_one_line_error_soon(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ComponentError, match=r"cannot reach the broker at 127\.0\.0\.1"):
        run_tail(stack_at(tmp_path, free_port()), None, count=1, as_json=False, out=io.StringIO())
    assert time.monotonic() - started < 5
    with pytest.raises(StateDirError):
        run_tail(StateDir(tmp_path / "none"), None, count=1, as_json=False, out=io.StringIO())


def test_the_logs_command_prints_the_merged_stream(logs_dir: StateDir) -> None:
    cli = [sys.executable, "-m", "lab.cli", "logs"]
    res = subprocess.run([*cli, "-n", "2", "--state-dir", str(logs_dir.root)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert res.stdout.splitlines() == ["2026-11-30T13:37:24.500Z ingest         stored 1",
                                       "2026-11-30T13:37:25.250Z devices        fleet stopped"]
    res = subprocess.run([*cli, "--state-dir", str(logs_dir.root / "no")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 1 and res.stdout == "" and len(res.stderr.splitlines()) == 1, res.stderr
