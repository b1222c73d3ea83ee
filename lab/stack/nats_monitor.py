"""The broker tier's counters on a NATS cluster, read from a node's monitoring endpoint.

    /varz   the node: messages in and out, connections, memory, the MQTT settings it runs with
    /connz  its connections; an MQTT one carries "mqtt_client" (the client id)
    /jsz    JetStream: the meta leader, and with ?streams=true&consumers=true every stream
            (its leader, replicas, messages) and consumer (num_pending, num_ack_pending)

NATS 2.9's MQTT keeps every QoS 1 message in one stream, `$MQTT_msgs` (interest retention:
a message stays while some consumer has not acked it), and gives each QoS 1 subscription of a
session a durable consumer named `<hash>_<nuid>`, where <hash> is session_hash(client id). So
a subscriber's backlog is its consumers' num_pending (not yet sent) + num_ack_pending (sent, no
PUBACK yet); the stream's message count is the cluster's, shared by all sessions.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

MQTT_MSGS = "$MQTT_msgs"
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
JSZ_DETAIL = "/jsz?streams=true&consumers=true&config=true"


def session_hash(client_id: str) -> str:
    """nats-server's getHash(): 8 base-62 digits of the SHA-256 of the client id. It names the
    session's record ($MQTT.sess.<hash>) and prefixes its consumers' durable names."""
    return "".join(_DIGITS[b % 62] for b in hashlib.sha256(client_id.encode()).digest()[:8])


def get_json(host: str, port: int, path: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """GET http://host:port/path as a JSON object; None when the node does not answer (down,
    frozen, starting) or answers with something else."""
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            doc = json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


@dataclass(frozen=True)
class ConsumerCounts:
    """A consumer as one node reports it. Only its leader's report is current: a consumer has
    its own leader (not always the stream's), and followers report stale delivery counts."""

    name: str
    leader: str | None
    num_pending: int  # in the stream, not yet delivered to the subscriber
    num_ack_pending: int  # delivered, its PUBACK not yet back
    num_redelivered: int
    delivered_stream_seq: int
    ack_floor_stream_seq: int

    @property
    def backlog(self) -> int:
        return self.num_pending + self.num_ack_pending


@dataclass(frozen=True)
class StreamCounts:
    name: str
    leader: str | None
    replicas: tuple[tuple[str, bool], ...]  # (node, current) of each follower
    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    max_msgs: int
    discard: str
    consumers: tuple[ConsumerCounts, ...]

    def session_consumers(self, client_id: str) -> tuple[ConsumerCounts, ...]:
        prefix = session_hash(client_id) + "_"
        return tuple(c for c in self.consumers if c.name.startswith(prefix))

    def session_backlog(self, client_id: str) -> int:
        return sum(c.backlog for c in self.session_consumers(client_id))


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key, 0)
    return int(value) if isinstance(value, int | float) else 0


def _consumer(doc: dict[str, Any]) -> ConsumerCounts:
    delivered = doc.get("delivered") or {}
    floor = doc.get("ack_floor") or {}
    leader = (doc.get("cluster") or {}).get("leader")
    return ConsumerCounts(str(doc.get("name", "")), str(leader) if leader else None,
                          _int(doc, "num_pending"), _int(doc, "num_ack_pending"),
                          _int(doc, "num_redelivered"), _int(delivered, "stream_seq"),
                          _int(floor, "stream_seq"))


def _stream(doc: dict[str, Any]) -> StreamCounts:
    state = doc.get("state") or {}
    cluster = doc.get("cluster") or {}
    config = doc.get("config") or {}
    replicas = tuple((str(r.get("name")), bool(r.get("current"))) for r in cluster.get("replicas") or [])
    leader = cluster.get("leader")
    return StreamCounts(
        name=str(doc.get("name", "")), leader=str(leader) if leader else None, replicas=replicas,
        messages=_int(state, "messages"), bytes=_int(state, "bytes"), first_seq=_int(state, "first_seq"),
        last_seq=_int(state, "last_seq"), max_msgs=_int(config, "max_msgs"),
        discard=str(config.get("discard", "")),
        consumers=tuple(_consumer(c) for c in doc.get("consumer_detail") or []))


def streams(jsz: dict[str, Any]) -> dict[str, StreamCounts]:
    """Every stream a /jsz?streams=true document describes (a node lists those it holds a
    replica of; with 3 replicas on 3 nodes, every node lists every stream)."""
    out: dict[str, StreamCounts] = {}
    for account in jsz.get("account_details") or []:
        for doc in account.get("stream_detail") or []:
            counts = _stream(doc)
            out[counts.name] = counts
    return out


def meta_leader(jsz: dict[str, Any]) -> str | None:
    meta = jsz.get("meta_cluster") or {}
    leader = meta.get("leader")
    return str(leader) if leader else None


@dataclass(frozen=True)
class NodeCounts:
    """One node's /varz and /connz: what the broker tier of the ledger reads per node."""

    server_name: str
    in_msgs: int
    out_msgs: int
    connections: int
    slow_consumers: int
    mem: int
    mqtt_clients: tuple[str, ...]


def node_counts(varz: dict[str, Any], connz: dict[str, Any]) -> NodeCounts:
    clients = tuple(str(c["mqtt_client"]) for c in connz.get("connections") or [] if c.get("mqtt_client"))
    return NodeCounts(str(varz.get("server_name", "")), _int(varz, "in_msgs"), _int(varz, "out_msgs"),
                      _int(varz, "connections"), _int(varz, "slow_consumers"), _int(varz, "mem"), clients)
