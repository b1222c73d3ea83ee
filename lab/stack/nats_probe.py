"""One MQTT QoS 1 round trip through a NATS cluster: the test that it is ready for MQTT.

A subscriber on one node and a publisher on another, both clean sessions with unique client
ids: SUBACK, then PUBLISH → PUBACK, then the message arrives. Any step missing its deadline
makes the attempt fail (the caller retries until its own deadline).
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ecgcore.credentials import ClientCredentials, client_tls_context

PROBE_PREFIX = "ecgpipe-probe"


class _Probe:
    """A paho client on its own thread, with events for CONNACK, SUBACK, PUBACK and a message."""

    def __init__(self, host: str, port: int, client_id: str,
                 login: ClientCredentials | None = None) -> None:
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.acked = threading.Event()
        self.received = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, clean_session=True)
        if login is not None:  # a secure cluster: the watcher's login (and certificate)
            self.client.username_pw_set(login.username, login.password)
            if login.tls is not None:
                self.client.tls_set_context(client_tls_context(login.tls))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_publish = lambda *_a: self.acked.set()
        self.client.on_message = lambda *_a: self.received.set()
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, _client: mqtt.Client, _userdata: Any, _flags: mqtt.ConnectFlags,
                    rc: ReasonCode, _props: Properties | None = None) -> None:
        if not rc.is_failure:
            self.connected.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def round_trip(host: str, sub_port: int, pub_port: int, deadline_s: float = 5.0,
               login: ClientCredentials | None = None) -> bool:
    """True when a QoS 1 message published on pub_port (PUBACKed) reached a QoS 1 subscriber
    on sub_port within deadline_s for each step."""
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    topic = f"{PROBE_PREFIX}/{tag}"
    sub = _Probe(host, sub_port, f"{PROBE_PREFIX}-sub-{tag}", login)
    pub = _Probe(host, pub_port, f"{PROBE_PREFIX}-pub-{tag}", login)
    try:
        if not (sub.connected.wait(deadline_s) and pub.connected.wait(deadline_s)):
            return False
        sub.client.subscribe(topic, qos=1)
        if not sub.subscribed.wait(deadline_s):
            return False
        pub.client.publish(topic, b"probe", qos=1)
        return pub.acked.wait(deadline_s) and sub.received.wait(deadline_s)
    finally:
        sub.close()
        pub.close()
