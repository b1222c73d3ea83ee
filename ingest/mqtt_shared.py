"""What both readings sources (ingest/subscriber.py for Mosquitto, ingest/nats_source.py for the
NATS cluster) share on their MQTT side: the message handed to the service, the counters, the
login, publishing end-to-end acks, the retained online/offline status and the flush on stop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from ecgcore.clock import Clock
from ecgcore.credentials import ClientCredentials, client_tls_context
from ingest.announce import Announcer
from ingest.errors import PublishError

# Published once at QoS 1 when stopping (see Subscriber.stop); nobody needs to subscribe to it.
SYNC_TOPIC = "ecgpipe/ingest/stopping"


@dataclass(frozen=True)
class InboundMessage:
    """One message as the broker handed it over, not yet acknowledged to the broker.

    `mid` and `generation` are the source's handle for ack_broker(): for MQTT the packet id
    and the connection it came on; for NATS a token naming the JetStream message."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: float
    generation: int


@dataclass
class SubscriberStats:
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    received: int = 0
    blocked_puts: int = 0
    given_up_puts: int = 0
    broker_acks: int = 0
    stale_acks_skipped: int = 0
    acks_published: int = 0
    acks_not_sent: int = 0
    subscribe_refusals: int = 0  # SUBACKs that refused the readings' subscription (each retried)
    flushed_on_stop: bool | None = None
    last_session_present: bool | None = None


def no_log(_line: str) -> None:
    """The default log: lines are dropped."""


def set_login(client: mqtt.Client, creds: ClientCredentials | None) -> None:
    """Log in as `creds` (and use its TLS certificate); None: anonymous, plaintext."""
    if creds is not None:
        client.username_pw_set(creds.username, creds.password)
        if creds.tls is not None:
            client.tls_set_context(client_tls_context(creds.tls))


def publish_acks(client: mqtt.Client, messages: Iterable[tuple[str, bytes]],
                 stats: SubscriberStats) -> int:
    """Publish end-to-end acks at QoS 1; returns how many paho accepted or kept for later.

    While disconnected paho keeps QoS 1 messages in RAM and sends them after reconnecting.
    An ack that paho refuses (its queue is full) is counted in stats.acks_not_sent: the
    device resends after its ack timeout and gets a duplicate ack then.
    """
    accepted = 0
    for topic, payload in messages:
        try:
            info = client.publish(topic, payload, qos=1)
        except ValueError as exc:
            raise PublishError(f"cannot publish an ack on {topic!r}: {exc}") from exc
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            accepted += 1
        else:
            stats.acks_not_sent += 1
    stats.acks_published += accepted
    return accepted


def announce_online(client: mqtt.Client, topic: str, announcer: Announcer, session_present: bool,
                    clock: Clock, log: Callable[[str], None]) -> str:
    """Publish the retained online status (ingest/announce.py); returns the session name."""
    before = announcer.session
    session = announcer.connected(session_present)
    client.publish(topic, announcer.online(session_present, clock.now()), qos=1, retain=True)
    if session != before:
        log(f"announced a new broker session {session} (the broker had none for us: "
            "devices re-send what they had in flight)")
    return session


def publish_offline(client: mqtt.Client, topic: str, announcer: Announcer, clock: Clock) -> None:
    """The retained offline status, published on a clean stop (a DISCONNECT discards the will)."""
    client.publish(topic, announcer.offline(clock.now()), qos=1, retain=True)


def flush(client: mqtt.Client, client_id: str, timeout_s: float) -> bool:
    """One QoS 1 message on SYNC_TOPIC and wait for its PUBACK: the broker then has processed
    every packet queued before it on this connection (see Subscriber.stop)."""
    try:
        info = client.publish(SYNC_TOPIC, client_id.encode(), qos=1)
        info.wait_for_publish(timeout_s)
        return info.is_published()
    except (RuntimeError, ValueError):  # not connected, or paho's queue is full
        return False
