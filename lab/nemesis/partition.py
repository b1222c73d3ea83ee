"""Partition one NATS node from the other two: cut its pairs' route proxies, as one fault.

    partition(sd, "nats-2", clock, for_s=30.0)   # nats-K, or nats-leader: the stream's leader now
    heal_partition(sd, clock)                     # every route proxy forwards again

The cluster's routes pass one proxy per pair of nodes (lab.stack.nats_routes); a partition of
node K cuts (or blackholes) the two proxies of the pairs K belongs to and heals the third, so
the other two keep their route and K has none. Its devices and ingest connections are not
touched: clients on K's MQTT and client ports still reach K, the minority side.

The history (history/nemesis.jsonl) gets one fault_start and one fault_end, "fault":
"partition", "target" as given (nats-2 or nats-leader), "node" (the one cut off), "via":
cut|blackhole, recorded by the first of K's two route proxies; the second applies the same
fault and records nothing. Both run the same --for, so they end together (within their polls).
"""

from __future__ import annotations

from ecgcore.clock import Clock
from lab.errors import ComponentError, ConfigError
from lab.nemesis import proxyctl
from lab.stack import nats_stack as nats
from lab.stack.nats_routes import ROUTE_LINKS, links_of
from lab.stack.procs import RUNNING
from lab.stack.statedir import StateDir
from lab.units import format_duration

FAULT = "partition"
TARGETS = (*nats.NODES, nats.LEADER)


def _routed(sd: StateDir) -> None:
    """ConfigError unless this stack is a NATS cluster whose routes pass running route proxies."""
    cfg = sd.config()
    if not nats.is_nats(cfg):
        raise ConfigError("a partition needs the NATS cluster: `ecgpipe up --broker nats-cluster`")
    if not cfg.nats_route_ports:
        raise ConfigError("this cluster's routes go node to node (`up --no-proxy`): nothing can "
                          "partition it; start it with the proxies")
    for link in ROUTE_LINKS:
        comp = sd.component(f"proxy-{link}")
        if comp.state() != RUNNING:
            raise ComponentError(f"the route proxy {comp.name} is {comp.state()}; start the stack "
                                 f"again with `ecgpipe up`")


def node_of(sd: StateDir, target: str) -> str:
    """The node a partition target means now (nats-leader: the readings' stream leader)."""
    if target not in TARGETS:
        raise ConfigError(f"a partition targets one of {', '.join(TARGETS)}, not {target!r}")
    return nats.leader(sd, sd.config()) if target == nats.LEADER else target


def partition(sd: StateDir, target: str, clock: Clock, kind: str = "cut", for_s: float | None = None,
              deadline_s: float = 5.0) -> str:
    """Cut (or blackhole) `target`'s two route links, heal the third; one line of what it did."""
    if kind not in ("cut", "blackhole"):
        raise ConfigError(f"a partition cuts or blackholes its routes, not {kind!r}")
    _routed(sd)
    node = node_of(sd, target)
    cut = links_of(node)
    for link in ROUTE_LINKS:
        if link not in cut:  # another node's partition, if one is on, ends here
            proxyctl.send(sd.root, link, "heal", clock, deadline_s)
    reset = 0
    for i, link in enumerate(cut):
        _f, _before, after = proxyctl.send(sd.root, link, kind, clock, deadline_s, for_s=for_s,
                                          record_as=FAULT, record_target=target, record=i == 0,
                                          record_node=node)
        reset += int((after.get("last_apply") or {}).get("reset") or 0)
    named = f"{target} ({node})" if target != node else node
    until = f"for {format_duration(for_s)}" if for_s else f"until `ecgpipe heal {node}`"
    how = "cut" if kind == "cut" else "blackholed (connections stay open, every byte dropped)"
    return (f"partitioned {named} from the other two nodes: its routes {' and '.join(cut)} {how}, "
            f"{reset} route connection(s) reset, {until}; its MQTT and client ports still answer")


def heal_partition(sd: StateDir, clock: Clock, deadline_s: float = 5.0) -> str:
    """Every route proxy forwards again; one line naming the partition that ended, if any."""
    _routed(sd)
    ended: list[str] = []
    for link in ROUTE_LINKS:
        _f, before, _after = proxyctl.send(sd.root, link, "heal", clock, deadline_s)
        if before.get("fault"):
            ended.append(link)
    if not ended:
        return "no partition was on: every route proxy forwards cleanly"
    return f"healed the partition: {' and '.join(ended)} forward again; the routes come back within seconds"
