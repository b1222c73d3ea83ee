"""Test helpers for the link proxy: the proxy as a real process, and a recording MQTT client."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ecgcore.clock import make_clock
from ecgcore.files import read_jsonl
from lab.nemesis.proxyctl import link_state, send
from lab.stack.ports import free_port
from lab.stack.procs import python_argv
from lab.stack.statedir import nemesis_history_path
from tests.conftest import wait_until


class LinkProxy:
    """`python -m lab.nemesis.proxy` in a subprocess in front of `upstream_port`, controlled through its
    control file exactly as the CLI does (lab.nemesis.proxyctl.send)."""

    def __init__(self, root: Path, upstream_port: int, name: str = "ingest", speed: float = 1.0,
                 port: int = 0) -> None:
        self.root, self.name, self.speed = root, name, speed
        self.killed = False
        self.port = port or free_port()
        root.mkdir(parents=True, exist_ok=True)
        self._log = (root / f"proxy-{name}.log").open("ab")
        self.proc = subprocess.Popen(
            python_argv("lab.nemesis.proxy", "--state-dir", str(root), "--name", name,
                        "--listen-port", str(self.port),
                        "--upstream-host", "127.0.0.1", "--upstream-port", str(upstream_port),
                        "--speed", str(speed)),
            stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(lambda: (self.state() or {}).get("pid") == self.proc.pid or self.proc.poll() is not None,
                   10, what="the proxy's first state file")
        assert self.proc.poll() is None, (root / f"proxy-{name}.log").read_text()

    def apply(self, kind: str, **params: Any) -> dict[str, Any]:
        """Apply a fault; returns the proxy's state once it reports the fault applied."""
        return send(self.root, self.name, kind, make_clock(self.speed), **params)[2]

    def state(self) -> dict[str, Any]:
        return link_state(self.root, self.name) or {}

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(nemesis_history_path(self.root))

    def kill(self) -> None:
        self.killed = True
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()


class Probe:
    """A paho client on its own network thread that records what happens to its connection:
    connects, disconnects (with time.monotonic() stamps) and the payloads it receives."""

    def __init__(self, port: int, client_id: str, *, keepalive: int = 60, topic: str | None = None) -> None:
        self.topic = topic
        self.connects = 0
        self.disconnects: list[float] = []
        self.payloads: list[bytes] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=keepalive)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        with self._lock:
            self.connects += 1
        if self.topic:
            client.subscribe(self.topic, qos=1)

    def _on_disconnect(self, *_: object) -> None:
        with self._lock:
            self.disconnects.append(time.monotonic())

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.payloads.append(bytes(msg.payload))

    def connected(self) -> bool:
        return self.client.is_connected()

    def received(self) -> list[bytes]:
        with self._lock:
            return list(self.payloads)

    def roundtrip(self, topic: str, payload: bytes = b"ping", timeout: float = 30.0) -> float:
        """Seconds from a QoS 1 publish to its PUBACK."""
        t0 = time.monotonic()
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout)
        assert info.is_published(), "no PUBACK"
        return time.monotonic() - t0

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
