"""The broker tier's counters on the NATS cluster: the `watch` component of a stack that runs
`--broker nats-cluster` (lab/stack/watch.py does the same from Mosquitto's $SYS).

About once a second it asks every node's monitoring port for `/jsz` (streams, consumers) and
writes what changed to watch/sys.jsonl and watch/latest.json in the watcher's schema, so the
ledger, `inspect broker` and the scenario runner read the cluster like a broker
(lab/history/brokerstats.py):

    store/messages/count         `$MQTT_msgs`' messages: every QoS 1 message some session still
                                 holds (readings ingest has not acknowledged, acks not delivered)
    retained messages/count      0: the retained statuses live in another stream (`$MQTT_rmsgs`)
    publish/messages/dropped     messages a `discard old` limit on `$MQTT_msgs` pushed out after
                                 their PUBACK (limit_drops; nothing on the cluster counts them,
                                 docs/nats.md fact 8): cumulative, so the checker's cause
                                 broker-queue-overflow explains those losses as on Mosquitto
    nats/leader                  the index (1-3) of the node leading `$MQTT_msgs` (0: none)
    nats/ingest_pending          ingest's durable consumer: not yet delivered + not yet acked

The counts come from the stream's leader and each consumer's own leader (followers lag).
The cluster's counters do not reset when one node restarts, so the incarnation stays 0.

Run: python -m lab.stack.nats_watch --state-dir DIR --monitor HOST:PORT[,HOST:PORT...] [--speed K]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from ecgcore.clock import Clock, make_clock
from ecgcore.files import JsonLines, write_json_atomic
from ecgcore.strict_warnings import apply_from_env
from lab.stack.nats_monitor import JSZ_DETAIL, MQTT_MSGS, StreamCounts, get_json, streams

INGEST_CONSUMER = "ecgpipe-ingest"  # ingest/nats_source.py's durable pull consumer


def merged_stream(views: list[dict[str, StreamCounts]]) -> StreamCounts | None:
    """`$MQTT_msgs` as its leader reports it (any view when no node names a leader)."""
    found = [v[MQTT_MSGS] for v in views if MQTT_MSGS in v]
    if not found:
        return None
    leader = next((s.leader for s in found if s.leader), None)
    return next((s for s in found if s.leader == leader and s.consumers), found[0])


def limit_drops(prev: StreamCounts | None, cur: StreamCounts) -> int:
    """Messages `$MQTT_msgs` discarded at its `max_msgs` limit between two samples (pure).

    Between two samples the stream took `last_seq` − its previous `last_seq` new messages, and
    its count grew by less exactly by the messages that left it: acknowledged by every
    subscriber, or, with `discard old` at the limit, pushed out after their PUBACK. Counted only
    when the stream is at its limit now (it filled and overflowed in between, or stayed full).
    At a full stream whose subscriber is away (the case the lab makes) nothing is acknowledged,
    so the count is exact; where a subscriber acks at the limit too, its acks count as drops:
    an upper bound then. In the interval where the stream falls below the limit (its subscriber
    came back) drops and acks cannot be told apart, and none is counted: those few are missed
    (seen: 13 counted of 15 lost, 4 devices). A stream made again counts nothing."""
    if prev is None or cur.discard != "old" or cur.max_msgs <= 0 or cur.messages < cur.max_msgs:
        return 0
    if cur.last_seq < prev.last_seq:
        return 0
    return max(0, (cur.last_seq - prev.last_seq) - (cur.messages - prev.messages))


def sample(views: list[dict[str, StreamCounts]], names: list[str], dropped: int = 0) -> dict[str, float]:
    """The watcher's values from each node's view of the streams (pure); `dropped`: the drops
    counted so far (limit_drops)."""
    stream = merged_stream(views)
    if stream is None:
        return {}
    ingest = [c for v in views for s in v.values() if s.name == MQTT_MSGS
              for c in s.consumers if c.name == INGEST_CONSUMER and c.leader and c.leader == s.leader] or \
             [c for c in stream.consumers if c.name == INGEST_CONSUMER]
    leader = names.index(stream.leader) + 1 if stream.leader in names else 0
    return {"store/messages/count": stream.messages, "retained messages/count": 0,
            "publish/messages/dropped": dropped, "nats/leader": leader,
            "nats/ingest_pending": ingest[0].backlog if ingest else 0}


class NatsWatcher:
    def __init__(self, state_dir: Path, monitors: list[tuple[str, int]], clock: Clock,
                 names: list[str]) -> None:
        self.dir = state_dir / "watch"
        self.monitors, self.clock, self.names = monitors, clock, names
        self.history = JsonLines(self.dir / "sys.jsonl")
        self.written: dict[str, float] = {}
        self.values: dict[str, float] = {}
        self.last: StreamCounts | None = None  # $MQTT_msgs at the previous sample
        self.dropped = 0
        self.stop = threading.Event()

    def poll(self) -> None:
        views = []
        for host, port in self.monitors:
            jsz: dict[str, Any] | None = get_json(host, port, JSZ_DETAIL, timeout=0.5)
            if jsz is not None:
                views.append(streams(jsz))
        stream = merged_stream(views)
        if stream is not None and stream.leader:  # only the leader's counts are current
            self.dropped += limit_drops(self.last, stream)
            self.last = stream
        self.values = sample(views, self.names, self.dropped) or self.values
        changed = {k: v for k, v in self.values.items() if self.written.get(k) != v}
        if changed:
            self.history.append({"t": round(self.clock.now(), 3), "incarnation": 0, "values": changed})
            self.written.update(changed)
        write_json_atomic(self.dir / "latest.json", {
            "t": self.clock.now(), "pid": os.getpid(), "incarnation": 0, "values": self.values,
            "nodes_answering": len(views), "dropped_events": 0})

    def run(self) -> int:
        while not self.stop.is_set():
            self.poll()
            self.stop.wait(1.0)
        self.history.close()
        return 0


def _monitor(text: str) -> list[tuple[str, int]]:
    out = []
    for part in text.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise argparse.ArgumentTypeError(f"{part!r} is not HOST:PORT")
        out.append((host, int(port)))
    return out


def main(argv: list[str] | None = None) -> int:
    apply_from_env()
    p = argparse.ArgumentParser(prog="python -m lab.stack.nats_watch", description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--monitor", required=True, type=_monitor, help="each node's HTTP monitoring address")
    p.add_argument("--names", default="nats-1,nats-2,nats-3", help="the nodes' server names, in order")
    p.add_argument("--speed", type=float, default=1.0)
    args = p.parse_args(argv)
    w = NatsWatcher(args.state_dir, args.monitor, make_clock(args.speed), args.names.split(","))

    def stop(_signum: int, _frame: FrameType | None) -> None:
        w.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"watch: /jsz of {len(args.monitor)} NATS nodes -> {w.dir / 'sys.jsonl'}", flush=True)
    return w.run()


if __name__ == "__main__":
    sys.exit(main())
