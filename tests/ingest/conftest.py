"""Helpers for the ingest tests: readings, an MQTT publisher, an ack collector and a service
running in-process on a thread (or as a `python -m ingest` subprocess)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from ecgcore.clock import SystemClock
from ecgcore.credentials import ClientCredentials, client_tls_context
from ingest.service import IngestService, ServiceConfig
from tests.conftest import wait_until
from wire import Reading, decode_ack, encode_reading

REPO = Path(__file__).resolve().parents[2]


def make_reading(device_id: str = "hc-0001", seq: int = 0, *, boot_epoch: int = 1,
                 n: int = 250, rate: int = 250, captured_at: float = 1_700_000_000.0,
                 flags: int = 0) -> Reading:
    samples = (np.sin(np.arange(n) / 10.0) * 1000).astype(np.int16)
    return Reading(device_id=device_id, boot_epoch=boot_epoch, seq=seq,
                   captured_at=captured_at + seq, sample_rate_hz=rate, gain_uv=2.5,
                   samples=samples, flags=flags)


def payload_of(device_id: str, seq: int, **kw: object) -> bytes:
    return encode_reading(make_reading(device_id, seq, **kw))  # type: ignore[arg-type]


class Publisher:
    """A plain paho client that publishes at QoS 1 and can wait for every PUBACK."""

    def __init__(self, host: str, port: int, client_id: str,
                 credentials: ClientCredentials | None = None) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        if credentials is not None:  # someone's login and certificate (a secure stack)
            self.client.username_pw_set(credentials.username, credentials.password)
            if credentials.tls is not None:
                self.client.tls_set_context(client_tls_context(credentials.tls))
        self.client.connect(host, port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, mqtt.error_string(info.rc)
        self.infos.append(info)

    def wait_all(self, timeout: float = 20.0) -> None:
        for info in self.infos:
            info.wait_for_publish(timeout)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class AckCollector:
    """Subscribes to heartcheck/+/ack and records every decoded ack (device_id, ranges)."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.acks: list[tuple[str, list[tuple[int, int]]]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe("heartcheck/+/ack", qos=1)
        self.client.connect(host, port)
        self.client.loop_start()
        wait_until(self.subscribed.is_set, 10, what="ack collector SUBACK")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        device_id, ranges = decode_ack(bytes(msg.payload))
        assert msg.topic == f"heartcheck/{device_id}/ack"
        with self._lock:
            self.acks.append((device_id, ranges))

    def acked(self, device_id: str | None = None) -> set[int]:
        with self._lock:
            return {s for d, ranges in self.acks if device_id in (None, d)
                    for lo, hi in ranges for s in range(lo, hi + 1)}

    def count(self, device_id: str, seq: int) -> int:
        with self._lock:
            return sum(1 for d, ranges in self.acks if d == device_id
                       for lo, hi in ranges if lo <= seq <= hi)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class ThreadedService:
    """An IngestService running on a thread, stopped (and checked) by stop()."""

    service: IngestService
    out: io.StringIO
    thread: threading.Thread = field(init=False)
    exit_code: int | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="ingest-under-test", daemon=True)

    def _run(self) -> None:
        try:
            self.exit_code = self.service.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop()
            self.error = exc

    def start(self, wait_ready: bool = True) -> ThreadedService:
        self.thread.start()
        if wait_ready:
            wait_until(self.service.ready_written.is_set, 20, what="ingest ready.json")
        return self

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> int:
        self.service.request_stop()
        self.thread.join(20)
        assert not self.thread.is_alive(), "ingest did not stop"
        if self.error is not None:
            raise self.error
        assert self.exit_code == 0
        return self.exit_code


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ThreadedService]]:
    """start_service(broker, client_id, acks=False, state_dir=None) -> ThreadedService."""
    running: list[ThreadedService] = []

    def start(broker: object, client_id: str, *, acks: bool = False,
              state_dir: Path | None = None, wait_ready: bool = True) -> ThreadedService:
        config = ServiceConfig(state_dir=state_dir or tmp_path / "state", host=broker.host,  # type: ignore[attr-defined]
                               port=broker.port, client_id=client_id, acks=acks)  # type: ignore[attr-defined]
        out = io.StringIO()
        ts = ThreadedService(IngestService(config, SystemClock(), out=out), out)
        running.append(ts)
        return ts.start(wait_ready)

    yield start
    for ts in running:
        if ts.alive:
            ts.stop()


def ingest_argv(state_dir: Path, host: str, port: int, client_id: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ingest", "--state-dir", str(state_dir), "--host", host,
            "--port", str(port), "--client-id", client_id, *extra]


@pytest.fixture
def spawn_ingest(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `python -m ingest` as a subprocess; every one still running is killed afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str], log_name: str = "ingest.log") -> subprocess.Popen[bytes]:
        log = (tmp_path / log_name).open("wb")
        p = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        procs.append(p)
        return p

    yield spawn
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)
