"""The link proxy as a process, between real paho clients and a real Mosquitto.

Each test starts `python -m lab.nemesis.proxy` in front of the test's broker and drives it through its
control file, as `ecgpipe cut|heal|slow|flap` do. Timing assertions are lower bounds the proxy
guarantees (a fault can only add delay) plus generous upper bounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.nemesis.proxyflow import burst_bytes
from lab.stack.broker import RunningBroker
from lab.stack.ports import free_port
from tests.conftest import wait_until
from tests.lab.proxyutil import LinkProxy, Probe

pytestmark = pytest.mark.broker

MakeProxy = Callable[..., LinkProxy]
MakeProbe = Callable[..., Probe]
Unique = Callable[[str], str]

KEEPALIVE = 2


@pytest.fixture
def link_proxy(tmp_path: Path, broker: RunningBroker) -> Iterator[Callable[..., LinkProxy]]:
    """Start proxies in front of the test's broker; each must exit 0 on SIGTERM afterwards."""
    started: list[LinkProxy] = []

    def make(upstream_port: int | None = None, root: Path | None = None, **kw: Any) -> LinkProxy:
        root = root or tmp_path / f"state{len(started)}"
        px = LinkProxy(root, upstream_port or broker.port, **kw)
        started.append(px)
        return px

    yield make
    codes = {px.root.name: px.stop() for px in started if not px.killed}
    assert set(codes.values()) <= {0}, codes


@pytest.fixture
def probes() -> Iterator[Callable[..., Probe]]:
    made: list[Probe] = []

    def make(port: int, client_id: str, **kw: Any) -> Probe:
        p = Probe(port, client_id, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def events(px: LinkProxy) -> list[tuple[str, str, str | None]]:
    return [(r["event"], r["fault"], r.get("reason")) for r in px.history() if r["event"] != "fault_phase"]


@pytest.mark.usefixtures("broker")
def test_clean_forwarding_counts_bytes(link_proxy: MakeProxy, probes: MakeProbe, unique: Unique) -> None:
    px = link_proxy()
    topic = unique("px/clean")
    sub = probes(px.port, unique("sub"), topic=topic)
    wait_until(sub.subscribed.is_set, 10, what="SUBACK through the proxy")
    pub = probes(px.port, unique("pub"))
    wait_until(pub.connected, 10, what="a second connection through the proxy")
    pub.roundtrip(topic, b"hello")
    wait_until(lambda: sub.received() == [b"hello"], 10, what="the message through the proxy")
    wait_until(lambda: px.state()["connections"]["open"] == 2, 5, what="two open connections in the state")
    st = px.state()
    assert st["mode"] == "clean" and st["fault"] is None
    assert st["bytes"]["forwarded"]["upstream"] > 5 and st["bytes"]["forwarded"]["downstream"] > 5
    assert st["bytes"]["dropped"] == {"upstream": 0, "downstream": 0}


def test_cut_resets_at_once_and_refuses_until_healed(
        link_proxy: MakeProxy, probes: MakeProbe, unique: Unique
) -> None:
    px = link_proxy()
    c = probes(px.port, unique("cut"))
    wait_until(c.connected, 10, what="connected through the proxy")
    t0 = time.monotonic()
    st = px.apply("cut")
    assert st["last_apply"]["reset"] == 1 and st["fault"]["fault"] == "cut"
    wait_until(lambda: c.disconnects, 2, what="the client to see the reset")
    assert c.disconnects[0] - t0 < 1.0
    refused = st["connections"]["refused"]
    wait_until(lambda: px.state()["connections"]["refused"] >= refused + 3, 10,
               what="three reconnect attempts, each reset")
    assert not c.connected() and c.connects == 1
    px.apply("heal")
    wait_until(c.connected, 5, what="reconnected after heal")
    assert c.connects == 2
    assert events(px) == [("fault_start", "cut", None), ("fault_end", "cut", "healed")]


def test_blackhole_is_noticed_only_by_keepalive(
        link_proxy: MakeProxy, probes: MakeProbe, broker: RunningBroker, unique: Unique
) -> None:
    px = link_proxy()
    topic = unique("px/bh")
    sub = probes(px.port, unique("bh-sub"), keepalive=KEEPALIVE, topic=topic)
    pub = probes(broker.port, unique("bh-pub"))  # straight to the broker
    wait_until(lambda: sub.subscribed.is_set() and pub.connected(), 10, what="both clients ready")
    pub.roundtrip(topic, b"before")
    wait_until(lambda: sub.received() == [b"before"], 10, what="a message before the blackhole")

    t0 = time.monotonic()
    st = px.apply("blackhole")
    assert st["last_apply"]["reset"] == 0 and st["connections"]["open"] == 1
    assert sub.connected()  # the connection stays "open"
    pub.roundtrip(topic, b"during")  # the broker takes it and sends it on, into the hole
    wait_until(lambda: sub.disconnects, 3 * KEEPALIVE + 3, what="keepalive to notice the blackhole")
    noticed = sub.disconnects[0] - t0
    assert noticed >= KEEPALIVE * 0.95, f"disconnected after {noticed:.2f} s: not by keepalive"
    assert b"during" not in sub.received()
    st = px.state()
    assert st["bytes"]["dropped"]["downstream"] > 0 and st["connections"]["reset"] == 0

    px.apply("heal")
    wait_until(lambda: sub.connected() and sub.connects >= 2, 10, what="reconnected after heal")
    wait_until(sub.subscribed.is_set, 5)
    pub.roundtrip(topic, b"after")
    wait_until(lambda: b"after" in sub.received(), 10, what="messages flow again after heal")
    assert events(px) == [("fault_start", "blackhole", None), ("fault_end", "blackhole", "healed")]


def test_latency_delays_each_direction_and_keeps_order(
        link_proxy: MakeProxy, probes: MakeProbe, broker: RunningBroker, unique: Unique
) -> None:
    px = link_proxy()
    topic = unique("px/lat")
    c = probes(px.port, unique("lat"))
    sub = probes(broker.port, unique("lat-sub"), topic=topic)  # straight to the broker
    wait_until(lambda: c.connected() and sub.subscribed.is_set(), 10, what="clients ready")
    assert c.roundtrip(topic) < 0.3  # clean

    px.apply("slow", latency_s=0.2)
    rtt = c.roundtrip(topic)
    assert 0.4 <= rtt < 2.0, rtt  # PUBLISH waits 200 ms, and so does its PUBACK

    # jitter much larger than the gap between chunks: they still arrive in order, and the
    # broker never sees a garbled byte stream (it would disconnect the client)
    st = px.apply("slow", latency_s=0.05, jitter_s=0.045)
    assert st["fault"]["jitter_s"] == 0.045
    n = 100
    infos = [c.client.publish(topic, str(i).encode(), qos=1) for i in range(n)]
    wait_until(lambda: all(i.is_published() for i in infos), 20, what="100 PUBACKs through a jittery link")
    wait_until(lambda: len(sub.received()) >= n + 2, 10, what="every message at the subscriber")
    assert sub.received()[2:] == [str(i).encode() for i in range(n)]
    assert c.connects == 1 and not c.disconnects

    px.apply("heal")
    assert c.roundtrip(topic) < 0.3
    assert [e for e in events(px) if e[0] == "fault_end"] == [
        ("fault_end", "slow", "replaced"), ("fault_end", "slow", "healed")]


def test_bandwidth_caps_each_direction(
        link_proxy: MakeProxy, probes: MakeProbe, broker: RunningBroker, unique: Unique
) -> None:
    px = link_proxy()
    topic = unique("px/bw")
    rate, size = 20_000.0, 20_000
    least = (size - burst_bytes(rate)) / rate  # the bucket may hold one burst when the transfer starts
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    up = probes(px.port, unique("bw-up"))
    down = probes(px.port, unique("bw-down"), topic=topic)
    direct = probes(broker.port, unique("bw-direct"))
    wait_until(lambda: up.connected() and down.subscribed.is_set() and direct.connected(), 10,
               what="clients ready")
    px.apply("slow", bandwidth_bytes_s=rate)

    took = up.roundtrip(topic, payload)  # client → broker through the cap
    assert least <= took < size / rate + 3, took
    wait_until(lambda: len(down.received()) == 1, size / rate + 5, what="the first copy downstream")

    t0 = time.monotonic()
    direct.roundtrip(topic, payload)  # broker → subscriber through the cap
    wait_until(lambda: len(down.received()) == 2, size / rate + 5, what="the second copy downstream")
    took = time.monotonic() - t0
    assert least <= took < size / rate + 3, took
    assert down.received() == [payload, payload]


def test_a_timed_fault_ends_by_itself_in_simulated_time(
        link_proxy: MakeProxy, probes: MakeProbe, unique: Unique
) -> None:
    px = link_proxy(speed=10.0)  # 5 simulated seconds pass in 0.5 real seconds
    c = probes(px.port, unique("timed"))
    wait_until(c.connected, 10, what="connected")
    t0 = time.monotonic()
    st = px.apply("cut", for_s=5.0)
    assert st["fault"]["for_s"] == 5.0
    wait_until(lambda: px.state()["fault"] is None, 5, what="the cut to expire")
    assert time.monotonic() - t0 >= 0.45
    wait_until(c.connected, 5, what="reconnected after the cut expired")
    start, end = (r for r in px.history() if r["event"] in ("fault_start", "fault_end"))
    assert (start["fault"], start["for_s"], start["target"]) == ("cut", 5.0, "ingest")
    assert (end["event"], end["reason"], end["duration_s"]) == ("fault_end", "expired", 5.0)
    assert 4.0 <= end["t"] - start["t"] <= 15.0  # simulated seconds
    assert px.state()["past_faults"][-1]["reason"] == "expired"


def test_flap_cuts_again_and_again_then_stops(
        link_proxy: MakeProxy, probes: MakeProbe, unique: Unique
) -> None:
    px = link_proxy()
    c = probes(px.port, unique("flap"))
    wait_until(c.connected, 10, what="connected")
    px.apply("flap", up_s=0.6, down_s=0.4, for_s=2.5)  # down at 0, 1.0 and 2.0 s
    wait_until(lambda: px.state()["fault"] is None, 6, what="the flap to end")
    wait_until(c.connected, 5, what="connected after the flap")
    assert len(c.disconnects) >= 2 and c.connects >= 3
    phases = [r["phase"] for r in px.history() if r["event"] == "fault_phase"]
    assert phases[:5] == ["down", "up", "down", "up", "down"]
    assert events(px) == [("fault_start", "flap", None), ("fault_end", "flap", "expired")]


def test_a_dead_upstream_resets_the_client(
        link_proxy: MakeProxy, probes: MakeProbe, unique: Unique
) -> None:
    px = link_proxy(upstream_port=free_port())  # nothing listens there
    c = probes(px.port, unique("noup"))
    wait_until(lambda: px.state()["connections"]["upstream_failed"] >= 2, 10, what="upstream failures")
    assert not c.connected() and px.state()["connections"]["open"] == 0


def test_stopping_the_proxy_ends_its_fault_in_the_history(link_proxy: MakeProxy) -> None:
    px = link_proxy()
    px.apply("slow", latency_s=0.1, for_s=60.0)
    assert px.stop() == 0
    assert events(px) == [("fault_start", "slow", None), ("fault_end", "slow", "stopped")]
    assert px.state()["running"] is False and px.state()["fault"] is None


def test_a_restarted_proxy_starts_clean(
        link_proxy: MakeProxy, probes: MakeProbe, unique: Unique
) -> None:
    px = link_proxy()
    px.apply("flap", up_s=60.0, down_s=60.0)
    px.kill()  # kill -9: the flap is left open in the history
    again = link_proxy(root=px.root, port=px.port)
    st = again.state()
    assert st["fault"] is None and st["control_seq"] == 1  # seq 1 is not applied again
    c = probes(again.port, unique("restart"))
    wait_until(c.connected, 10, what="connected through the restarted proxy")
    assert again.apply("cut")["control_seq"] == 2
    assert events(again) == [("fault_start", "flap", None), ("fault_end", "flap", "proxy restarted"),
                             ("fault_start", "cut", None)]
