"""The NATS cluster's routes through the lab's link proxies, so one node can be partitioned.

One route connection per pair of nodes, through a proxy of its own (`route-1-2`, `route-1-3`,
`route-2-3`: lab.nemesis.proxy, components `proxy-route-1-2` ...):

    nats-1 ──► proxy route-1-2 ──► nats-2 cluster port
    nats-1 ──► proxy route-1-3 ──► nats-3 cluster port
    nats-2 ──► proxy route-2-3 ──► nats-3 cluster port

The lower-numbered node of a pair holds the explicit route (through its pair's proxy); the
other holds none to it, so both ends of the pair's one connection pass that proxy. Every node
advertises a cluster address nobody can dial (UNDIALLABLE): a node that accepted a route and
loses it, or learns of a node by gossip, may try the address the other advertises (an implicit
route); with its real listen address that would go around the proxies. Partitioning node K is
cutting the proxies of the two pairs K belongs to (lab.nemesis.partition).

`up --no-proxy` keeps the direct routes (each node to the other two's cluster ports).
"""

from __future__ import annotations

from itertools import combinations

NODE_COUNT = 3
PAIRS: tuple[tuple[int, int], ...] = tuple(combinations(range(1, NODE_COUNT + 1), 2))
ROUTE_LINKS: tuple[str, ...] = tuple(f"route-{a}-{b}" for a, b in PAIRS)
ROUTE_PROXIES: tuple[str, ...] = tuple(f"proxy-{r}" for r in ROUTE_LINKS)
UNDIALLABLE_PORT = 1  # tcpmux: nothing listens there on the lab's loopback (connect is refused)


def node_number(node: str) -> int:
    """nats-K → K (ValueError for anything else)."""
    prefix, _, k = node.partition("-")
    if prefix != "nats" or not k.isdigit() or not 1 <= int(k) <= NODE_COUNT:
        raise ValueError(f"not a node of the cluster: {node!r}")
    return int(k)


def links_of(node: str) -> tuple[str, ...]:
    """The route links a partition of `node` cuts: the pairs it belongs to."""
    k = node_number(node)
    return tuple(link for link, pair in zip(ROUTE_LINKS, PAIRS, strict=True) if k in pair)


def dialled(node: str, proxy_ports: dict[str, int]) -> tuple[int, ...]:
    """The ports `node`'s explicit routes dial: its pairs' proxies where it is the lower node."""
    k = node_number(node)
    return tuple(proxy_ports[link] for link, (a, _b) in zip(ROUTE_LINKS, PAIRS, strict=True) if a == k)


def upstream_node(link: str) -> str:
    """The node a route proxy forwards to: the higher of its pair."""
    return f"nats-{link.rsplit('-', 1)[1]}"
