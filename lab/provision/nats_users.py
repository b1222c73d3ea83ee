"""The NATS cluster's users and what each may do, from the same identities as Mosquitto's
password file and ACL (lab/provision/broker_files.py): DIR/secrets/broker/nats-users.conf, an
`authorization { users: [...] }` block each node includes.

NATS maps an MQTT topic to a subject (heartcheck/hc-0001/ack → heartcheck.hc-0001.ack) and
checks its permissions on the subject. Measured with nats-server 2.9 (tests/lab/test_nats_secure.py,
docs/nats.md facts 26–29):
- a QoS 1 subscription is delivered through a JetStream consumer whose deliver subject is
  `$MQTT.sub.<nuid>`: without subscribe permission on `$MQTT.sub.>` every QoS 1 SUBSCRIBE is
  refused (SUBACK 0x80, log "Unable to create subscription for JetStream consumer"). With it, a
  device still cannot read anyone else's messages: SUBSCRIBE to `#`, `$MQTT/#` or
  `$MQTT/sub/#` is refused, and subscribing to another device's ack topic is refused;
- a publish outside the permissions is dropped and, over MQTT 3.1.1, still PUBACKed (as
  Mosquitto does); ingest never sees it;
- `allowed_connection_types` keeps a device's login to MQTT: it cannot log in as a NATS client.

Passwords are stored as bcrypt hashes at cost 4 (about 1 ms). Every secret is 24 random bytes
from `secrets.token_urlsafe`, so a slower hash adds no protection against guessing, while each
node verifies the hash at every CONNECT: at bcrypt's default cost 11 (about 100 ms of CPU) a
reconnecting fleet of 3,000 devices would cost the cluster minutes of CPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import bcrypt

from lab.provision.broker_files import INGEST_SYNC_TOPIC
from wire.topics import (
    ECG_SUBSCRIPTION,
    INGEST_STATUS_TOPIC,
    ROOT,
    STATUS_SUBSCRIPTION,
    ack_topic,
    ecg_topic,
    status_topic,
)

BCRYPT_COST = 4
MQTT_DELIVERY = "$MQTT.sub.>"  # the deliver subjects of QoS 1 subscriptions (module docstring)
MQTT_MSGS = "$MQTT_msgs"
# what ingest may ask of JetStream, on $MQTT_msgs's consumers only: create its durable consumer,
# read its info, fetch from it (no deleting, no other stream: a device's session lives there too)
JS_CONSUMER_OPS = ("CREATE", "DURABLE.CREATE", "INFO", "MSG.NEXT")
PROBE = "ecgpipe-probe"  # the lab's readiness round trip (lab/stack/nats_probe.PROBE_PREFIX), as the watcher


def subject(topic: str) -> str:
    """NATS's subject for an MQTT topic or filter: / → ., + → *, trailing # → >."""
    parts = ["*" if p == "+" else ">" if p == "#" else p for p in topic.split("/")]
    return ".".join(parts)


INGEST_STATUS = subject(INGEST_STATUS_TOPIC)
# ingest's status and its workers' (MQTT's .../status/# matches the parent level too; NATS's
# .> does not, so both are listed)
INGEST_STATUSES = [INGEST_STATUS, f"{INGEST_STATUS}.>"]
ACKS = subject(f"{ROOT}/+/ack")


def device_permissions(device_id: str) -> dict[str, object]:
    return {"publish": {"allow": [subject(ecg_topic(device_id)), subject(status_topic(device_id))]},
            "subscribe": {"allow": [MQTT_DELIVERY, subject(ack_topic(device_id)), *INGEST_STATUSES]}}


SERVICE_PERMISSIONS: dict[str, tuple[list[str], dict[str, object]]] = {
    # ingest: its readings from a durable JetStream pull consumer on $MQTT_msgs (NATS client:
    # the JetStream API for that stream only, and acks), acks and its status over MQTT
    "ingest": (["MQTT", "STANDARD"], {
        "publish": {"allow": [ACKS, *INGEST_STATUSES, subject(INGEST_SYNC_TOPIC), "$JS.API.INFO",
                              f"$JS.API.STREAM.INFO.{MQTT_MSGS}",
                              *(f"$JS.API.CONSUMER.{op}.{MQTT_MSGS}.>" for op in JS_CONSUMER_OPS),
                              f"$JS.ACK.{MQTT_MSGS}.>"]},
        "subscribe": {"allow": ["_INBOX.>", MQTT_DELIVERY, subject(STATUS_SUBSCRIPTION),
                                *INGEST_STATUSES, subject(INGEST_SYNC_TOPIC)]},
    }),
    # the lab's watcher reads the nodes' HTTP monitoring (no login there: loopback only); over
    # MQTT it only makes the readiness round trip on its own subject
    "watcher": (["MQTT"], {
        "publish": {"allow": [PROBE, f"{PROBE}.>"]},
        "subscribe": {"allow": [MQTT_DELIVERY, PROBE, f"{PROBE}.>"]},
    }),
    # `ecgpipe tail`: reads readings and statuses; publishes nothing
    "observer": (["MQTT"], {
        "publish": {"deny": [">"]},
        "subscribe": {"allow": [MQTT_DELIVERY, subject(ECG_SUBSCRIPTION), subject(STATUS_SUBSCRIPTION),
                                *INGEST_STATUSES]},
    }),
}


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_COST)).decode()


def render_users(credentials: Iterable[tuple[str, str, str]]) -> str:
    """`authorization { users: [...] }` for (name, role, password) triples. Each value is
    written as a JSON string, which NATS's config parser reads as a quoted string."""
    out = ["# ecgpipe's NATS users, written by `ecgpipe provision` (lab/provision/nats_users.py).",
           "# Each node includes this file; a user may do only what its permissions grant.",
           "authorization {", "  users: ["]
    for name, role, password in credentials:
        if role == "device":
            kinds, perms = ["MQTT"], device_permissions(name)
        else:
            kinds, perms = SERVICE_PERMISSIONS[role]
        out.append(f"    {{user: {json.dumps(name)}, password: {json.dumps(hashed(password))}, "
                   f"allowed_connection_types: {json.dumps(kinds)}, permissions: {json.dumps(perms)}}}")
    out += ["  ]", "}", ""]
    return "\n".join(out)
