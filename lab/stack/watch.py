"""The $SYS watcher: the lab side's only paho user.

It subscribes to `$SYS/broker/#` and, about once a second, appends the counters that
changed to watch/sys.jsonl: {"t", "incarnation", "values": {"publish/messages/dropped": 12, ...}}.
A broker restart resets $SYS counters; the watcher notices the uptime going backwards and
starts a new incarnation, so the lab can sum drops across restarts (lab.history.brokerstats).

Run: python -m lab.stack.watch --state-dir DIR --host H --port P [--speed K]
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ecgcore.clock import Clock, make_clock
from ecgcore.credentials import ClientCredentials, CredentialsError, SecretsDir, client_tls_context
from ecgcore.files import JsonLines, write_json_atomic
from ecgcore.strict_warnings import apply_from_env

PREFIX = "$SYS/broker/"


def parse_value(raw: bytes) -> float | None:
    """'1234', '12.5' or '57 seconds' → a number; anything else → None."""
    text = raw.decode(errors="replace").strip().split(" ")[0]
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return None


class Watcher:
    def __init__(self, state_dir: Path, host: str, port: int, clock: Clock,
                 credentials: ClientCredentials | None = None) -> None:
        self.clock = clock
        self.dir = state_dir / "watch"
        self.history = JsonLines(self.dir / "sys.jsonl")
        self.events: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=10_000)
        self.dropped_events = 0
        self.values: dict[str, float] = {}
        self.written: dict[str, float] = {}
        self.incarnation = 0
        self.pending: dict[str, float] | None = None
        self.running = True
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"ecgpipe-watch-{os.getpid()}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        if credentials is not None:  # a secure stack: the `watcher` identity, $SYS only
            self.client.username_pw_set(credentials.username, credentials.password)
            if credentials.tls is not None:
                self.client.tls_set_context(client_tls_context(credentials.tls))
        # paho sleeps for whatever delay it is given; its annotation says int
        self.client.reconnect_delay_set(0.2, 2)  # type: ignore[arg-type]
        self.client.connect_async(host, port, keepalive=5)

    # paho thread: hand events over, touch nothing else
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: mqtt.ConnectFlags,
                    _rc: ReasonCode, _props: Properties | None = None) -> None:
        client.subscribe(PREFIX + "#", qos=0)
        self._put(("connected", None))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._put(("value", (msg.topic, msg.payload)))

    def _put(self, ev: tuple[str, object]) -> None:
        try:
            self.events.put_nowait(ev)
        except queue.Full:
            self.dropped_events += 1  # counted, reported in latest.json

    def _apply(self, topic: str, payload: bytes) -> None:
        """After every (re)connect, hold values until the broker's uptime arrives: only then
        is it known whether these counters continue the old ones or restarted from zero."""
        key = topic.removeprefix(PREFIX)
        value = parse_value(payload)
        if value is None:
            return
        if self.pending is None:
            self.values[key] = value
            return
        self.pending[key] = value
        if key == "uptime":
            if value < self.values.get("uptime", -1):
                self.incarnation += 1
                self.values = {}
                self.written = {}
            self.values.update(self.pending)
            self.pending = None

    def flush(self) -> None:
        changed = {k: v for k, v in self.values.items() if self.written.get(k) != v and k != "uptime"}
        if changed:
            self.history.append({"t": round(self.clock.now(), 3), "incarnation": self.incarnation,
                                 "values": changed})
            self.written.update(changed)
        write_json_atomic(self.dir / "latest.json", {
            "t": self.clock.now(), "pid": os.getpid(), "incarnation": self.incarnation,
            "values": self.values, "dropped_events": self.dropped_events})

    def run(self) -> int:
        self.client.loop_start()
        next_flush = time.monotonic() + 1.0
        while self.running:
            try:
                kind, data = self.events.get(timeout=max(0.0, next_flush - time.monotonic()))
                if kind == "value" and isinstance(data, tuple):
                    self._apply(*data)
                elif kind == "connected":
                    self.pending = {}
            except queue.Empty:
                pass
            if time.monotonic() >= next_flush:
                self.flush()
                next_flush = time.monotonic() + 1.0
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()
        self.history.close()
        return 0


def main(argv: list[str] | None = None) -> int:
    apply_from_env()
    p = argparse.ArgumentParser(prog="python -m lab.stack.watch", description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--secrets-dir", type=Path, default=None, help="log in as `watcher`")
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args(argv)
    try:
        creds = (None if args.secrets_dir is None
                 else SecretsDir(args.secrets_dir).client("watcher", tls=args.tls))
    except CredentialsError as exc:
        p.error(str(exc))
    w = Watcher(args.state_dir, args.host, args.port, make_clock(args.speed), creds)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        w.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"watch: $SYS of {args.host}:{args.port} -> {w.dir / 'sys.jsonl'}", flush=True)
    return w.run()


if __name__ == "__main__":
    sys.exit(main())
