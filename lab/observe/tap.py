"""A read-only MQTT subscriber for `ecgpipe tail`: the only paho import of lab/observe.

Threading rule: paho runs its network loop on its own thread (`loop_start`); its callbacks only
put `Arrival`s and `Notice`s on a bounded queue.Queue and never block: when the queue is full the
message is dropped and counted (`dropped`, read after stop()). The caller's thread takes
everything from `queue` and does all decoding and printing.

The tap connects straight to the broker (not through a link proxy, so a link fault hides no
traffic) with a unique client id and a clean start, and subscribes at QoS 0 on every connect:
it never holds a session, so it never makes the broker queue anything for it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ecgcore.credentials import ClientCredentials, client_tls_context
from lab.errors import ComponentError

CONNECT_TIMEOUT_S = 5.0


class Arrival(NamedTuple):
    at: float  # Unix seconds when paho handed it over
    topic: str
    payload: bytes


class Notice(NamedTuple):
    at: float
    text: str  # e.g. "disconnected from the broker: ..."


class BrokerTap:
    def __init__(self, host: str, port: int, topics: Sequence[str], *, maxsize: int = 10_000,
                 client_id: str | None = None, credentials: ClientCredentials | None = None,
                 mqtt311: bool = False) -> None:
        """`mqtt311`: MQTT 3.1.1 instead of 5 (a NATS cluster speaks only 3.1.1)."""
        self.host, self.port, self.topics = host, port, tuple(topics)
        self.client_id = client_id or f"ecgpipe-tail-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.queue: queue.Queue[Arrival | Notice] = queue.Queue(maxsize=maxsize)
        self.dropped = 0  # written by paho's thread only
        self._ready = threading.Event()  # set by the first SUBACK (or a refusal)
        self._refused: str | None = None
        self._connects = 0
        self._mqtt311 = mqtt311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv311 if mqtt311 else mqtt.MQTTv5,
                             clean_session=True if mqtt311 else None)
        client.connect_timeout = CONNECT_TIMEOUT_S
        if credentials is not None:  # a secure stack: the read-only `observer` identity
            client.username_pw_set(credentials.username, credentials.password)
            if credentials.tls is not None:
                client.tls_set_context(client_tls_context(credentials.tls))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._started = False

    def start(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect and subscribe, and return once the broker confirmed the subscription (from then
        on nothing published is missed); ComponentError within about timeout_s if it does not."""
        where = f"{self.host}:{self.port}"
        try:
            if self._mqtt311:  # clean_session was set with the client
                self._client.connect(self.host, self.port, keepalive=30)
            else:
                self._client.connect(self.host, self.port, keepalive=30, clean_start=True)
        except (OSError, ValueError) as exc:
            raise ComponentError(f"cannot reach the broker at {where}: {exc}") from exc
        self._client.loop_start()
        self._started = True
        if not self._ready.wait(timeout_s) or self._refused:
            why = self._refused or f"no answer within {timeout_s:g} s"
            self.stop()
            raise ComponentError(f"cannot connect to the broker at {where}: {why}")

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._client.disconnect()
            self._client.loop_stop()

    # ---- paho's thread ---------------------------------------------------------------------

    def _put(self, item: Arrival | Notice) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._ready.set()
            return
        client.subscribe([(topic, 0) for topic in self.topics])
        self._connects += 1
        if self._connects > 1:
            self._put(Notice(time.time(), f"reconnected to the broker at {self.host}:{self.port}"))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any,
                      properties: Any) -> None:
        if all(rc.is_failure for rc in reason_codes):
            self._refused = f"subscription refused ({', '.join(map(str, reason_codes))})"
        self._ready.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if self._started:
            self._put(Notice(time.time(), f"disconnected from the broker ({reason_code}); retrying"))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._put(Arrival(time.time(), message.topic, bytes(message.payload)))
