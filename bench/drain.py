"""Drain ratio: the ingest service's drain rate on a broker backlog, divided by the drain
rate of a bare paho subscriber that only counts messages, on the same backlog, same run.

    .venv/bin/python -m bench.drain [--messages 20000] [--devices 50]

Both subscribers first create persistent sessions (clean start off, session expiry), then
disconnect; one publisher queues the same readings for both; each is then reconnected in
turn and timed from its first to its last message.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ecgcore.files import read_json
from lab.stack.broker import BrokerSettings, RunningBroker
from lab.stack.ports import free_port
from wire import Reading, encode_reading
from wire.topics import ECG_SUBSCRIPTION, ecg_topic


def _props() -> Properties:
    p = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: unannotated
    p.SessionExpiryInterval = 3600
    return p


class BareSubscriber:
    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.subscribed = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.host, self.port = host, port

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        client.subscribe(ECG_SUBSCRIPTION, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.count += 1

    def connect(self) -> None:
        self.c.connect(self.host, self.port, clean_start=False, properties=_props())
        self.c.loop_start()

    def disconnect(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def publish_backlog(host: str, port: int, n: int, devices: int) -> float:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(100)
    pub.max_queued_messages_set(0)
    pub.connect(host, port)
    pub.loop_start()
    rng = np.random.default_rng(1)
    samples = rng.integers(-400, 400, 250).astype(np.int16)
    t0 = time.perf_counter()
    infos = []
    for i in range(n):
        dev = f"bd-{i % devices:04d}"
        r = Reading(dev, 1, i // devices, 1_700_000_000.0 + i // devices, 250, 2.5, samples)
        infos.append(pub.publish(ecg_topic(dev), encode_reading(r), qos=1))
    for info in infos:
        info.wait_for_publish(60)
    dt = time.perf_counter() - t0
    pub.disconnect()
    pub.loop_stop()
    return dt


def stored_count(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def start_ingest(state: Path, port: int) -> subprocess.Popen[bytes]:
    (state / "ingest").mkdir(parents=True, exist_ok=True)
    (state / "ingest" / "ready.json").unlink(missing_ok=True)
    log = (state / "ingest.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "ingest", "--state-dir", str(state), "--host", "127.0.0.1",
                             "--port", str(port), "--no-acks", "--client-id", "bench-ingest"],
                            stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 30
    while (read_json(state / "ingest" / "ready.json") or {}).get("pid") != proc.pid:
        if time.monotonic() > end or proc.poll() is not None:
            raise SystemExit("ingest did not become ready; see " + str(state / "ingest.log"))
        time.sleep(0.05)
    return proc


def run(messages: int, devices: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="ecgpipe-bench-drain-"))
    port = free_port()
    broker = RunningBroker(BrokerSettings(port=port, data_dir=tmp / "b" / "data", log_file=tmp / "b" / "log",
                                          max_queued=messages * 2), tmp / "b" / "mosquitto.conf").start()
    try:
        bare = BareSubscriber("127.0.0.1", port, "bench-bare")
        bare.connect()
        bare.subscribed.wait(10)
        bare.disconnect()
        ing = start_ingest(tmp, port)  # creates the ingest's persistent session
        ing.send_signal(signal.SIGTERM)
        ing.wait(30)
        pub_s = publish_backlog("127.0.0.1", port, messages, devices)

        bare = BareSubscriber("127.0.0.1", port, "bench-bare")
        bare.connect()
        end = time.monotonic() + 300
        while bare.count < messages and time.monotonic() < end:
            time.sleep(0.02)
        bare.disconnect()
        if bare.first is None or bare.last is None:
            raise SystemExit(f"the bare subscriber received {bare.count} of {messages} messages")
        bare_rate = (bare.count - 1) / (bare.last - bare.first)

        db = tmp / "ingest" / "ingest.sqlite"
        base = stored_count(db)
        ing = start_ingest(tmp, port)
        t_first = None
        c_first = 0
        end = time.monotonic() + 600
        while time.monotonic() < end:
            c = stored_count(db) - base
            now = time.perf_counter()
            if c > 0 and t_first is None:
                t_first, c_first = now, c
            if c >= messages:
                break
            time.sleep(0.02)
        t_end = time.perf_counter()
        ing.send_signal(signal.SIGTERM)
        ing.wait(30)
        ingest_rate = (messages - c_first) / (t_end - t_first) if t_first else 0.0
        return {"messages": messages, "devices": devices, "publish_s": round(pub_s, 2),
                "bare_msgs_per_s": round(bare_rate), "bare_received": bare.count,
                "ingest_msgs_per_s": round(ingest_rate), "ingest_stored": stored_count(db) - base,
                "ratio": round(ingest_rate / bare_rate, 3)}
    finally:
        broker.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--devices", type=int, default=50)
    a = p.parse_args()
    print(json.dumps(run(a.messages, a.devices), indent=1))


if __name__ == "__main__":
    main()
