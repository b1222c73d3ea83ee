"""A 3-node NATS JetStream cluster with its MQTT listener: the lab's alternative broker.

    cluster = NatsCluster(root).start()      # render, start, wait until ready for MQTT
    cluster.kill("n1"); cluster.restart("n1")   # kill -9, then the same node from its store
    cluster.stream_leader()                  # the node leading $MQTT_msgs (from /jsz)
    cluster.stream()                         # its counters: messages, per-consumer pending
    cluster.stop()

Each node lives in root/<name>/: node.conf (broker_config/nats/node.conf rendered), store/
(JetStream's files), and the lab's <name>.log and <name>.pid (lab.stack.procs.Component), so
a node is killed, frozen and restarted like any other component. Ports are free loopback ports
chosen once, so a restarted node comes back on the same ports with the same store.

Ready (wait_ready) means, with a deadline and never a fixed sleep: every running node answers
/jsz and names the same JetStream meta leader, every stream a node holds has a leader, and a
QoS 1 MQTT publish on one node reaches a subscriber on another (nats_probe.round_trip).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ecgcore.credentials import ClientCredentials
from ecgcore.waiting import wait_until
from lab.errors import BrokerError
from lab.stack.nats_config import (
    ClusterLimits,
    NodePorts,
    NodeSecurity,
    NodeSettings,
    node_argv,
    write_node_config,
)
from lab.stack.nats_monitor import (
    JSZ_DETAIL,
    MQTT_MSGS,
    NodeCounts,
    StreamCounts,
    get_json,
    meta_leader,
    node_counts,
    streams,
)
from lab.stack.nats_probe import round_trip
from lab.stack.nats_routes import UNDIALLABLE_PORT
from lab.stack.ports import free_port, port_open
from lab.stack.procs import EXITED, RUNNING, STOPPED, Component

NODE_NAMES = ("n1", "n2", "n3")


def _distinct_free_ports(n: int, host: str) -> list[int]:
    """n different free ports (free_port may hand the same one out twice in a row)."""
    found: list[int] = []
    while len(found) < n:
        port = free_port(host)
        if port not in found:
            found.append(port)
    return found


@dataclass(frozen=True)
class NatsNode:
    settings: NodeSettings
    directory: Path

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def ports(self) -> NodePorts:
        return self.settings.ports

    @property
    def mqtt_port(self) -> int:
        return self.settings.ports.mqtt

    @property
    def component(self) -> Component:
        return Component(self.name, self.directory)

    @property
    def config_path(self) -> Path:
        return self.directory / "node.conf"

    def state(self) -> str:
        return self.component.state()

    def monitor(self, path: str) -> dict[str, object] | None:
        return get_json(self.host, self.ports.http, path)


class NatsCluster:
    """Three nodes under `root`, each on its own free ports (see the module docstring)."""

    def __init__(self, root: Path, limits: ClusterLimits | None = None, host: str = "127.0.0.1",
                 names: tuple[str, ...] = NODE_NAMES, ports: list[NodePorts] | None = None,
                 security: NodeSecurity | None = None, probe_login: ClientCredentials | None = None,
                 routes: Mapping[str, tuple[int, ...]] | None = None) -> None:
        """`ports`: each node's, in `names`' order (a stack's, saved in stack.json); None: free
        ports chosen now. `security`: logins and TLS (None: anonymous, plaintext); then
        `probe_login` is whom the readiness round trip logs in as (the watcher). `routes`: the
        ports each node's routes dial, by name (the route proxies, lab.stack.nats_routes; then
        every node advertises an undiallable cluster address); None: the others' cluster ports."""
        self.root = root
        self.probe_login = probe_login
        self.limits = limits or ClusterLimits()
        if ports is None:
            free = _distinct_free_ports(4 * len(names), host)
            ports = [NodePorts(*free[4 * i: 4 * i + 4]) for i in range(len(names))]
        all_ports = ports
        self.nodes: dict[str, NatsNode] = {}
        advertise = None if routes is None else f"{host}:{UNDIALLABLE_PORT}"
        for name, own in zip(names, all_ports, strict=True):
            peers = tuple(p.cluster for p in all_ports if p is not own)
            if routes is not None:  # JetStream refuses to start with no route: one to itself, ignored
                peers = routes[name] or (own.cluster,)
            settings = NodeSettings(name, own, root / name / "store", peers, self.limits, host, security,
                                    advertise)
            self.nodes[name] = NatsNode(settings, root / name)

    def __iter__(self) -> Iterator[NatsNode]:
        return iter(self.nodes.values())

    def node(self, name: str) -> NatsNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise BrokerError(f"no node {name!r} in this cluster ({', '.join(self.nodes)})") from None

    def running(self) -> list[NatsNode]:
        return [n for n in self if n.state() == RUNNING]

    # --- processes -------------------------------------------------------------------------

    def start(self, deadline_s: float = 30.0) -> NatsCluster:
        for node in self:
            write_node_config(node.settings, node.config_path)
            node.component.start(node_argv(node.config_path))
        self.wait_ready(deadline_s)
        return self

    def _start_node(self, node: NatsNode, deadline_s: float) -> None:
        node.component.start(node_argv(node.config_path))
        ok = wait_until(lambda: port_open(node.host, node.ports.http), deadline_s,
                        give_up=lambda: node.state() == EXITED)
        if not ok:
            raise BrokerError(f"NATS node {node.name} did not start: see {node.component.logfile}")

    def kill(self, name: str) -> None:
        """kill -9 one node: nothing is flushed, its store is what it wrote before."""
        node = self.node(name)
        node.component.signal("KILL", by="kill")
        if not node.component.wait_state(EXITED, 10.0):
            raise BrokerError(f"NATS node {name} survived SIGKILL")

    def freeze(self, name: str) -> None:
        """SIGSTOP: the node holds its sockets open but answers nothing (a hung broker)."""
        node = self.node(name)
        node.component.signal("STOP")
        node.component.wait_state(STOPPED, 5.0)

    def thaw(self, name: str) -> None:
        node = self.node(name)
        node.component.signal("CONT")
        node.component.wait_state(RUNNING, 5.0)

    def restart(self, name: str, deadline_s: float = 30.0) -> None:
        """Start a killed (or stopped) node again on its ports and store, then wait until the
        whole cluster is ready for MQTT again."""
        node = self.node(name)
        if node.state() != EXITED:
            node.component.stop()
        self._start_node(node, deadline_s)
        self.wait_ready(deadline_s)

    def stop(self) -> None:
        for node in self:
            if node.state() == STOPPED:
                node.component.signal("CONT")
            node.component.stop(10.0)

    # --- readiness -------------------------------------------------------------------------

    def meta_leaders(self) -> dict[str, str | None]:
        """Each running node's view of the JetStream meta leader (None: no answer, or none)."""
        out: dict[str, str | None] = {}
        for node in self.running():
            jsz = get_json(node.host, node.ports.http, "/jsz")
            out[node.name] = meta_leader(jsz) if jsz else None
        return out

    def _js_settled(self) -> bool:
        """All running nodes agree on a meta leader, and every stream has a running leader that
        reports its replicas on running nodes current (only the leader's view of the replicas
        counts: a follower reports its peers as not current while the stream is idle)."""
        leaders = set(self.meta_leaders().values())
        if len(leaders) != 1 or None in leaders:
            return False
        alive = {n.name for n in self.running()}
        views: dict[str, dict[str, StreamCounts]] = {}
        for node in self.running():
            jsz = get_json(node.host, node.ports.http, JSZ_DETAIL)
            if jsz is None:
                return False
            views[node.name] = streams(jsz)
        for name in {s for view in views.values() for s in view}:
            leader = next((v[name].leader for v in views.values() if name in v), None)
            own = views.get(leader or "", {}).get(name)
            if own is None or own.leader != leader:
                return False
            if any(not current for peer, current in own.replicas if peer in alive):
                return False
        return True

    def wait_settled(self, deadline_s: float = 30.0) -> bool:
        """After a node died: until the survivors agree on a meta leader and every stream is
        led by a running node (until then a CONNECT or SUBSCRIBE may time out on the server)."""
        return wait_until(self._js_settled, deadline_s, poll_s=0.1)

    def describe(self) -> str:
        """One line per running node: its meta leader, and each stream's leader and replicas."""
        lines = []
        for node in self.running():
            jsz = get_json(node.host, node.ports.http, JSZ_DETAIL)
            if jsz is None:
                lines.append(f"{node.name}: no answer")
                continue
            parts = [f"{s.name} leader={s.leader} replicas={dict(s.replicas)}" for s in streams(jsz).values()]
            lines.append(f"{node.name}: meta={meta_leader(jsz)} " + "; ".join(parts))
        return " | ".join(lines)

    def wait_ready(self, deadline_s: float = 30.0,
                   tick: Callable[[float], None] | None = None) -> None:
        """Until the deadline: JetStream settled, then an MQTT round trip between two running
        nodes (each probe step has at most 5 s). BrokerError naming what was missing."""
        start = time.monotonic()

        def left() -> float:
            return max(0.1, deadline_s - (time.monotonic() - start))

        if not wait_until(self._js_settled, left(), poll_s=0.1, tick=tick):
            raise BrokerError(f"NATS cluster under {self.root}: JetStream not settled after "
                              f"{deadline_s:.0f} s: {self.describe()}")
        nodes = self.running()
        sub, pub = nodes[0], nodes[-1]
        if not wait_until(lambda: round_trip(sub.host, sub.mqtt_port, pub.mqtt_port, min(5.0, left()),
                                             self.probe_login), left(), poll_s=0.1):
            raise BrokerError(f"NATS cluster under {self.root}: no MQTT QoS 1 round trip "
                              f"{pub.name} → {sub.name} within {deadline_s:.0f} s")

    # --- counters (the broker tier of the ledger) ------------------------------------------

    def stream(self, name: str = MQTT_MSGS) -> StreamCounts | None:
        """The stream's counters as its leader reports them, each consumer's as the consumer's
        own leader reports them (followers lag); None when no running node knows the stream."""
        views: dict[str, StreamCounts] = {}
        for node in self.running():
            jsz = node.monitor(JSZ_DETAIL)
            found = streams(jsz).get(name) if jsz else None
            if found is not None:
                views[node.name] = found
        if not views:
            return None
        first = next(iter(views.values()))
        own = views.get(first.leader or "", first)
        consumers = []
        for consumer in own.consumers:
            view = views.get(consumer.leader or "", own)
            consumers.append(next((c for c in view.consumers if c.name == consumer.name), consumer))
        return dataclasses.replace(own, consumers=tuple(consumers))

    def stream_leader(self, name: str = MQTT_MSGS) -> str | None:
        counts = self.stream(name)
        return counts.leader if counts else None

    def routes(self) -> dict[str, set[str] | None]:
        """Each running node's routes from its `/routez`: the names of the nodes it has a route
        to (None: no answer). Several connections to one node count once."""
        ids: dict[str, str] = {}
        for node in self.running():
            varz = node.monitor("/varz")
            if varz is not None:
                ids[str(varz.get("server_id"))] = node.name
        out: dict[str, set[str] | None] = {}
        for node in self.running():
            routez = node.monitor("/routez")
            listed = routez.get("routes") if routez else None
            if not isinstance(listed, list):
                out[node.name] = None
                continue
            remotes = [str(r.get("remote_id")) for r in listed if isinstance(r, dict)]
            out[node.name] = {ids.get(r, r) for r in remotes}
        return out

    def node_counts(self, name: str) -> NodeCounts | None:
        node = self.node(name)
        varz = node.monitor("/varz")
        connz = node.monitor("/connz?limit=100000")
        return node_counts(varz, connz) if varz is not None and connz is not None else None
