"""The stack on a 3-node NATS JetStream cluster (`ecgpipe up --broker nats-cluster`, scenario
`[broker] kind = "nats-cluster"`): the nodes are components nats-1, nats-2, nats-3, each in
DIR/broker/nats-K/ (node.conf, store/, its log and pidfile), on ports chosen by `up` and saved
in stack.json (`nats_ports`, "client:cluster:mqtt:http" per node) so a node killed -9 comes
back on the same ports with its store.

How the rest of the stack meets the cluster (docs/scale.md):
- devices speak MQTT 3.1.1 (the cluster refuses 5) through the devices link proxy, which
  spreads their connections over the three nodes' MQTT ports and skips a dead node;
- ingest takes readings from a durable JetStream pull consumer through the ingest link proxy
  (the nodes' client ports), and publishes acks and its status over MQTT to the nodes directly;
- the watcher reads `/jsz` from every node (lab/stack/nats_watch.py).
`broker` on the command line names all three nodes (`kill broker` kills the cluster);
`nats-leader` names the node leading the readings' stream at that moment. With the proxies,
the nodes' routes go through route proxies of their own (lab/stack/nats_routes.py), started
before the nodes, so `ecgpipe partition nats-K` can cut one node off the other two.

Security is the Mosquitto stack's: a secure stack (the default) gives every node the users file
`ecgpipe provision` wrote (DIR/secrets/broker/nats-users.conf: bcrypt hashes, per-device
permissions, lab/provision/nats_users.py) and, with TLS, requires a certificate from the stack's
CA on the MQTT, client and route ports; `--no-tls` keeps the logins without TLS; `--insecure`
is anonymous and plaintext. The readiness round trip logs in as the watcher.
"""

from __future__ import annotations

from ecgcore.credentials import CredentialsError, SecretsDir
from lab.errors import BrokerError, ComponentError, ConfigError
from lab.stack.nats_cluster import NatsCluster
from lab.stack.nats_config import NodePorts, NodeSecurity, node_argv, write_node_config
from lab.stack.nats_routes import ROUTE_LINKS, ROUTE_PROXIES, dialled, upstream_node
from lab.stack.ports import free_port, port_open
from lab.stack.statedir import StackConfig, StateDir

KIND = "nats-cluster"
NODES = ("nats-1", "nats-2", "nats-3")
LEADER = "nats-leader"


def is_nats(cfg: StackConfig) -> bool:
    return cfg.broker == KIND


def with_ports(cfg: StackConfig, taken: set[int]) -> StackConfig:
    """A NATS stack's nodes' ports: kept when saved, else 12 free ones, none in `taken`; and
    with the proxies, one for each route proxy (lab.stack.nats_routes)."""
    from dataclasses import replace

    if not is_nats(cfg) or cfg.nats_ports:
        return cfg
    routed = len(ROUTE_LINKS) if cfg.proxies else 0
    ports: list[int] = []
    while len(ports) < 4 * len(NODES) + routed:
        p = free_port(cfg.host)
        if p not in ports and p not in taken:
            ports.append(p)
    spec = tuple(":".join(str(p) for p in ports[4 * i: 4 * i + 4]) for i in range(len(NODES)))
    return replace(cfg, nats_ports=spec, port=ports[2],  # `port`: node 1's MQTT, for the watcher's sake
                   nats_route_ports=tuple(str(p) for p in ports[4 * len(NODES):]))


def route_ports(cfg: StackConfig) -> dict[str, int] | None:
    """Each route proxy's port by its link (route-1-2 ...), or None: direct routes."""
    if not cfg.nats_route_ports:
        return None
    try:
        return dict(zip(ROUTE_LINKS, (int(p) for p in cfg.nats_route_ports), strict=True))
    except ValueError as exc:
        raise ConfigError(f"stack.json: nats_route_ports {list(cfg.nats_route_ports)} is not "
                          f"{len(ROUTE_LINKS)} ports") from exc


def route_proxy_argv(cfg: StackConfig, root: str, link: str) -> list[str]:
    """A route proxy: listens where its pair's lower node dials, forwards to the higher node."""
    from lab.stack.procs import python_argv

    own = (route_ports(cfg) or {})[link]
    upstream = node_ports(cfg)[NODES.index(upstream_node(link))].cluster
    return python_argv("lab.nemesis.proxy", "--state-dir", root, "--name", link, "--listen-host", cfg.host,
                       "--listen-port", str(own), "--upstream", f"{cfg.host}:{upstream}",
                       "--speed", str(cfg.speed), "--seed", str(cfg.seed))


def node_ports(cfg: StackConfig) -> list[NodePorts]:
    try:
        return [NodePorts(*(int(x) for x in spec.split(":"))) for spec in cfg.nats_ports]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"stack.json: nats_ports {list(cfg.nats_ports)} is not 3 x "
                          f"client:cluster:mqtt:http") from exc


def cluster(sd: StateDir, cfg: StackConfig) -> NatsCluster:
    security, probe = None, None
    if cfg.secure:
        secrets = SecretsDir(sd.secrets_dir)
        nodes = secrets.cluster_tls()
        security = NodeSecurity(secrets.nats_users_file, nodes.ca, nodes.cert, nodes.key, tls=cfg.tls)
        try:
            probe = secrets.client("watcher", tls=cfg.tls)
        except CredentialsError as exc:
            raise ConfigError(str(exc)) from exc
    proxied = route_ports(cfg)
    routes = None if proxied is None else {n: dialled(n, proxied) for n in NODES}
    return NatsCluster(sd.broker_dir, host=cfg.host, names=NODES, ports=node_ports(cfg),
                       security=security, probe_login=probe, routes=routes)


def argv(sd: StateDir, cfg: StackConfig, name: str) -> list[str]:
    """A node's argv, its node.conf written (again) first."""
    node = cluster(sd, cfg).node(name)
    write_node_config(node.settings, node.config_path)
    return node_argv(node.config_path)


def listening(cfg: StackConfig, name: str) -> bool:
    return port_open(cfg.host, node_ports(cfg)[NODES.index(name)].http)


def wait_ready(sd: StateDir, cfg: StackConfig, deadline_s: float = 60.0) -> None:
    """JetStream settled and an MQTT round trip between two running nodes (ComponentError)."""
    try:
        cluster(sd, cfg).wait_ready(deadline_s)
    except BrokerError as exc:
        raise ComponentError(str(exc)) from exc


def mqtt_servers(cfg: StackConfig) -> list[str]:
    return [f"{cfg.host}:{p.mqtt}" for p in node_ports(cfg)]


def client_upstreams(cfg: StackConfig) -> list[str]:
    return [f"{cfg.host}:{p.client}" for p in node_ports(cfg)]


def monitors(cfg: StackConfig) -> str:
    return ",".join(f"{cfg.host}:{p.http}" for p in node_ports(cfg))


def leader(sd: StateDir, cfg: StackConfig) -> str:
    """The node that leads the readings' stream now (`nats-leader` on the command line)."""
    found = cluster(sd, cfg).stream_leader()
    if found not in NODES:
        raise ComponentError("no node of the NATS cluster leads the readings' stream now")
    return str(found)


def special_argv(sd: StateDir, cfg: StackConfig, name: str) -> list[str] | None:
    """A component's argv where a NATS stack's differs in kind (the nodes, the watcher)."""
    from lab.stack.procs import python_argv

    if name in NODES:
        return argv(sd, cfg, name)
    if name in ROUTE_PROXIES:
        return route_proxy_argv(cfg, str(sd.root), name.removeprefix("proxy-"))
    if name == "watch":
        return python_argv("lab.stack.nats_watch", "--state-dir", str(sd.root), "--monitor", monitors(cfg),
                           "--names", ",".join(NODES), "--speed", str(cfg.speed))
    return None


def upstream_args(cfg: StackConfig, link: str) -> list[str]:
    """A link proxy's upstreams: the broker, or every node (MQTT ports for the devices, the
    NATS client ports for ingest's readings)."""
    if not is_nats(cfg):
        return ["--upstream-host", cfg.host, "--upstream-port", str(cfg.port)]
    ups = mqtt_servers(cfg) if link == "devices" else client_upstreams(cfg)
    return [a for u in ups for a in ("--upstream", u)]


def ingest_args(cfg: StackConfig, port: int) -> list[str]:
    """Ingest on the cluster: readings from the JetStream consumer through its link's proxy
    (`port`), or without the proxies (`up --no-proxy`) from the nodes' client ports; acks and
    status over MQTT to the nodes."""
    if not is_nats(cfg):
        return []
    direct = ",".join(f"nats://{u}" for u in client_upstreams(cfg))
    servers = f"nats://{cfg.host}:{port}" if cfg.proxies else direct
    return ["--nats", servers, "--mqtt-servers", ",".join(mqtt_servers(cfg))]


def device_args(cfg: StackConfig) -> list[str]:
    return ["--mqtt-version", "3.1.1"] if is_nats(cfg) else []
