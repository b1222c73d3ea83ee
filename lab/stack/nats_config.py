"""Render broker_config/nats/node.conf for each node of a lab NATS cluster (JetStream + MQTT).

The template's {{placeholders}} are filled from a NodeSettings; one left unfilled (or a value
that is not in the template) is a BrokerError, so no node starts from a half-rendered file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from lab.errors import BrokerError

NODE_TEMPLATE = Path(
    os.environ.get(
        "ECGPIPE_NATS_CONFIG",
        Path(__file__).resolve().parents[2] / "broker_config" / "nats" / "node.conf",
    )
)
PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
CLUSTER_NAME = "ecgpipe"


@dataclass(frozen=True)
class NodePorts:
    """The four ports one node listens on (all on the cluster's host)."""

    client: int
    cluster: int
    mqtt: int
    http: int

    def all(self) -> tuple[int, int, int, int]:
        return (self.client, self.cluster, self.mqtt, self.http)


@dataclass(frozen=True)
class ClusterLimits:
    """What every node of a cluster shares: storage limits and the MQTT settings."""

    max_memory_store: str = "64MB"
    max_file_store: str = "1GB"
    stream_replicas: int = 3
    ack_wait: str = "30s"
    max_ack_pending: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.stream_replicas <= 3:
            raise BrokerError(f"stream_replicas must be 1 to 3, got {self.stream_replicas}")
        if not 1 <= self.max_ack_pending <= 65535:
            raise BrokerError(f"max_ack_pending must be 1 to 65535, got {self.max_ack_pending}")


@dataclass(frozen=True)
class NodeSecurity:
    """A secure node: the users file `ecgpipe provision` wrote, and with `tls` the stack's CA
    and the nodes' certificate (tls/cluster.pem: server and client, for the routes too)."""

    users_file: Path
    ca: Path
    cert: Path
    key: Path
    tls: bool = True

    def tls_block(self, indent: str) -> str:
        return "\n".join(indent + line for line in (
            "tls {", f"  cert_file: {_q(self.cert)}", f"  key_file: {_q(self.key)}",
            f"  ca_file: {_q(self.ca)}", "  verify: true", "}"))


def _q(path: Path) -> str:
    """A quoted string for NATS's config parser (JSON's quoting)."""
    return json.dumps(str(path))


@dataclass(frozen=True)
class NodeSettings:
    name: str
    ports: NodePorts
    store_dir: Path
    peers: tuple[int, ...]  # the cluster ports this node's routes dial (the others', or route proxies')
    limits: ClusterLimits = ClusterLimits()
    host: str = "127.0.0.1"
    security: NodeSecurity | None = None  # None: anonymous and plaintext (`up --insecure`)
    advertise: str | None = None  # the cluster address told to the others (None: the listen address)

    def security_values(self, config_dir: Path | None = None) -> dict[str, str]:
        """`config_dir`: where node.conf is written. nats-server reads an include's path relative
        to the including file's directory, even a path that starts with '/'."""
        sec = self.security
        if sec is None:
            return {"auth": "", "cluster_tls": "", "mqtt_tls": ""}
        users = Path(os.path.relpath(sec.users_file, config_dir)) if config_dir else sec.users_file
        auth = f"include {_q(users)}"
        if not sec.tls:
            return {"auth": auth, "cluster_tls": "", "mqtt_tls": ""}
        return {"auth": auth + "\n" + sec.tls_block(""), "cluster_tls": sec.tls_block("  "),
                "mqtt_tls": sec.tls_block("  ")}

    def values(self, config_dir: Path | None = None) -> dict[str, str]:
        routes = "\n".join(f"    nats-route://{self.host}:{p}" for p in self.peers)
        lim = self.limits
        return {
            "server_name": self.name, "host": self.host, "client_port": str(self.ports.client),
            "http_port": str(self.ports.http), "cluster_port": str(self.ports.cluster),
            "mqtt_port": str(self.ports.mqtt), "store_dir": str(self.store_dir),
            "cluster_name": CLUSTER_NAME, "routes": routes,
            "cluster_advertise": f"  advertise: {json.dumps(self.advertise)}" if self.advertise else "",
            "max_memory_store": lim.max_memory_store, "max_file_store": lim.max_file_store,
            "stream_replicas": str(lim.stream_replicas), "ack_wait": lim.ack_wait,
            "max_ack_pending": str(lim.max_ack_pending), **self.security_values(config_dir),
        }


def render_node(settings: NodeSettings, template: Path = NODE_TEMPLATE,
                config_dir: Path | None = None) -> str:
    """The template with every placeholder filled; BrokerError if one is unknown or unused."""
    values = settings.values(config_dir)
    text = template.read_text()
    wanted = set(PLACEHOLDER.findall(text))
    missing = sorted(wanted - set(values))
    if missing:
        raise BrokerError(f"{template}: no value for {', '.join(missing)}")
    unused = sorted(set(values) - wanted)
    if unused:
        raise BrokerError(f"{template}: no placeholder for {', '.join(unused)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def write_node_config(settings: NodeSettings, path: Path) -> Path:
    settings.store_dir.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_node(settings, config_dir=path.parent))
    return path


def nats_binary() -> str:
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if not found:
        raise BrokerError("nats-server is not installed: run scripts/setup (apt-get install nats-server)")
    return found


def node_argv(config_path: Path) -> list[str]:
    """The node logs to stdout, which the lab's Component sends to the node's log file, and
    its pidfile is the Component's (nats-server's own -l/-P are not used)."""
    return [nats_binary(), "-c", str(config_path)]
