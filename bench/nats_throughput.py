"""MQTT QoS 1 throughput of the NATS cluster's MQTT listener, as a ratio to Mosquitto measured
in the same run (docs/nats.md fact 18).

    .venv/bin/python -m bench.nats_throughput [--messages 3000] [--rounds 3]

One publisher, one subscriber, 600-byte payloads, QoS 1 both ways, paho's inflight window 20:
Mosquitto (one broker), then the 3-node cluster (stream_replicas 3) with both clients on one
node, then with the publisher on another node. Each leg times from the first publish to the
last distinct message received; every leg must deliver all messages (a missing one fails the
run). Was a test (`test_throughput_against_mosquitto`) until a fully loaded CI run took over its
60-s deadline: a rate is a benchmark's business, not a test's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lab.stack.broker import BrokerSettings, RunningBroker
from lab.stack.nats_cluster import NatsCluster
from lab.stack.ports import free_port

PAYLOAD_BYTES = 600
HOST = "127.0.0.1"


class Client:
    def __init__(self, port: int, role: str) -> None:
        self.seen: set[int] = set()
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                                  client_id=f"bench-{role}-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(20)
        self.client.on_connect = lambda *_a: self.connected.set()
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(30):
            raise SystemExit(f"no CONNACK from port {port} in 30 s")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.seen.add(int(msg.payload[:10]))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def leg(sub_port: int, pub_port: int, n: int, deadline_s: float) -> float:
    """Messages per second from one publisher to one subscriber."""
    topic = f"heartcheck/bench-{uuid.uuid4().hex[:8]}/ecg"
    sub, pub = Client(sub_port, "sub"), Client(pub_port, "pub")
    try:
        sub.client.subscribe(topic, qos=1)
        if not sub.subscribed.wait(30):
            raise SystemExit("no SUBACK in 30 s")
        t0 = time.monotonic()
        for seq in range(n):
            head = f"{seq:010d}".encode()
            pub.client.publish(topic, head + b"x" * (PAYLOAD_BYTES - len(head)), qos=1)
        while len(sub.seen) < n:
            if time.monotonic() - t0 > deadline_s:
                raise SystemExit(f"{len(sub.seen)} of {n} messages in {deadline_s:.0f} s")
            time.sleep(0.01)
        return n / (time.monotonic() - t0)
    finally:
        sub.close()
        pub.close()


def run(n: int, rounds: int, deadline_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ecgpipe-bench-nats-") as tmp:
        root = Path(tmp)
        port = free_port()
        broker = RunningBroker(BrokerSettings(port=port, data_dir=root / "mq" / "data", max_queued=n * 2,
                                              log_file=root / "mq" / "mosquitto.log"),
                               root / "mq" / "mosquitto.conf").start()
        cluster = NatsCluster(root / "nats")
        cluster.start(deadline_s=60)
        try:
            p1, p2, _ = (node.mqtt_port for node in cluster)
            out: list[dict[str, float]] = []
            for _ in range(rounds):
                m = leg(port, port, n, deadline_s)
                same, cross = leg(p1, p1, n, deadline_s), leg(p1, p2, n, deadline_s)
                out.append({"mosquitto": round(m), "nats_same_node": round(same),
                            "nats_cross_node": round(cross), "ratio_same": round(same / m, 3),
                            "ratio_cross": round(cross / m, 3)})
            return {"messages": n, "payload_bytes": PAYLOAD_BYTES, "rounds": out}
        finally:
            cluster.stop()
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds allowed per leg")
    a = ap.parse_args()
    if a.messages < 1 or a.rounds < 1:
        ap.error("--messages and --rounds must be at least 1")
    print(json.dumps(run(a.messages, a.rounds, a.deadline), indent=1))


if __name__ == "__main__":
    main()
