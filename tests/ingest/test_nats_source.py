"""Ingest on the NATS JetStream cluster (ingest/nats_source.py), against a real 3-node cluster:
readings through the shared durable consumer on $MQTT_msgs, workers sharing it, end-to-end acks
over MQTT 3.1.1, redelivery after ack_wait, quarantine. Each figure is printed as a line
"MEASURED <name>: ..." (pytest -s); docs/nats.md, "Ingest on the NATS cluster", states them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import nats
import nats.js.errors
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ecgcore.clock import SystemClock
from ingest.mqtt_shared import InboundMessage
from ingest.nats_source import DURABLE, FILTER, STREAM, NatsConfig, NatsSource, topic_of
from ingest.service import IngestService, ServiceConfig
from lab.stack.nats_cluster import NatsCluster
from lab.stack.nats_config import ClusterLimits
from tests.conftest import wait_until
from tests.ingest.conftest import ThreadedService, payload_of
from wire import decode_ack

NO_NATS = shutil.which("nats-server") is None and not Path("/usr/sbin/nats-server").exists()
pytestmark = [pytest.mark.broker,
              pytest.mark.skipif(NO_NATS, reason="nats-server is not installed (scripts/setup installs it)")]
HOST = "127.0.0.1"


def measured(name: str, **figures: object) -> None:
    print(f"\nMEASURED {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


class Mqtt311:
    """A paho MQTT 3.1.1 client (NATS 2.9 refuses MQTT 5): publishes at QoS 1, records PUBACKs,
    disconnects and what arrives on its subscriptions. It subscribes again on every connect:
    while the cluster fails over, a SUBSCRIBE can be lost (docs/nats.md, fact 14)."""

    def __init__(self, port: int, client_id: str, *, clean: bool = True) -> None:
        self.lock = threading.Lock()
        self.got: list[tuple[str, bytes]] = []
        self.subacks = 0
        self.disconnects = 0
        self.connected = threading.Event()
        self.topics: list[str] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect_async(HOST, port, keepalive=10)
        self.client.loop_start()
        self.client_id = client_id
        wait_until(self.connected.is_set, 30, what=f"CONNACK for {client_id}")
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def _on_connect(self, client: mqtt.Client, *_args: object) -> None:
        for topic in self.topics:
            client.subscribe(topic, qos=1)
        self.connected.set()

    def _on_disconnect(self, *_args: object) -> None:
        with self.lock:
            self.disconnects += 1

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def _on_subscribe(self, *_args: object) -> None:
        with self.lock:
            self.subacks += 1

    def subscribe(self, topic: str) -> None:
        n = self.subacks
        self.topics.append(topic)
        self.client.subscribe(topic, qos=1)
        wait_until(lambda: self.subacks > n, 30, what=f"SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1)
        self.infos.append(info)
        return info

    def wait_all(self, timeout: float = 30.0) -> None:
        wait_until(lambda: all(i.is_published() for i in self.infos), timeout, what="every PUBACK")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path_factory.mktemp("nats"), ClusterLimits())
    try:
        c.start(deadline_s=40)
        yield c
    finally:
        c.stop()


def _nats_urls(c: NatsCluster) -> tuple[str, ...]:
    return tuple(f"nats://{HOST}:{n.ports.client}" for n in c)


def _mqtt_servers(c: NatsCluster) -> tuple[tuple[str, int], ...]:
    return tuple((HOST, n.mqtt_port) for n in c)


async def _jetstream(c: NatsCluster, action: Callable[[nats.js.JetStreamContext], object]) -> object:
    nc = await nats.connect(list(_nats_urls(c)))
    try:
        result = action(nc.jetstream(timeout=10))
        return await result if asyncio.iscoroutine(result) else result
    finally:
        await nc.close()


def _forget_consumer(c: NatsCluster) -> None:
    """No ingest consumer and none of its readings left: each test starts as on a new cluster."""
    async def run(js: nats.js.JetStreamContext) -> None:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(STREAM, DURABLE)
        await js.purge_stream(STREAM, subject=FILTER)

    asyncio.run(_jetstream(c, run))


@pytest.fixture
def fresh(cluster: NatsCluster) -> Iterator[NatsCluster]:
    cluster.wait_ready(30)
    _forget_consumer(cluster)
    yield cluster
    _forget_consumer(cluster)


def _stream_messages(c: NatsCluster) -> tuple[int, int]:
    async def run(js: nats.js.JetStreamContext) -> tuple[int, int]:
        info = await js.stream_info(STREAM)
        return info.state.messages, info.state.first_seq

    got = asyncio.run(_jetstream(c, run))
    assert isinstance(got, tuple)
    return got


def _worker(c: NatsCluster, state: Path, name: str | None, client_id: str, *,
            ack_wait_s: float = 30.0, source: NatsSource | None = None) -> ThreadedService:
    config = ServiceConfig(state_dir=state, host=HOST, port=c.node("n1").mqtt_port,
                           client_id=client_id, acks=True, worker=name,
                           nats_servers=_nats_urls(c), mqtt_servers=_mqtt_servers(c),
                           nats_ack_wait_s=ack_wait_s)
    out = io.StringIO()
    return ThreadedService(IngestService(config, SystemClock(), source=source, out=out), out)


def _stored(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        return {"readings": con.execute("SELECT COUNT(*) FROM readings").fetchone()[0],
                "keys": con.execute("SELECT COUNT(DISTINCT device_id || '/' || boot_epoch || '/' || seq)"
                                    " FROM readings").fetchone()[0],
                "duplicates": con.execute("SELECT COUNT(*) FROM duplicates").fetchone()[0]}


def _publish(pub: Mqtt311, devices: Sequence[str], per_device: int) -> int:
    for seq in range(per_device):
        for dev in devices:
            pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, seq))
    pub.wait_all()
    return len(devices) * per_device


# ---- the subject → topic mapping ---------------------------------------------------------------


@pytest.mark.parametrize(("subject", "topic"), [
    ("$MQTT.msgs.heartcheck.d1.ecg", "heartcheck/d1/ecg"),
    ("$MQTT.msgs.heartcheck.hc-0001_x.ecg", "heartcheck/hc-0001_x/ecg"),
    ("$MQTT.msgs.heartcheck.*.ecg", "heartcheck/*/ecg"),  # mapped exactly; validate() says bad-topic
    ("$MQTT.msgs.heartcheck./.ecg", "$MQTT.msgs.heartcheck./.ecg"),  # an empty level: not guessed
    ("$MQTT.msgs.heartcheck.a/.ecg", "$MQTT.msgs.heartcheck.a/.ecg"),
    ("$MQTT.msgs.heartcheck.d1.ack", "$MQTT.msgs.heartcheck.d1.ack"),
    ("heartcheck.d1.ecg", "heartcheck.d1.ecg"),
])
def test_subjects_map_back_to_topics_only_when_exact(subject: str, topic: str) -> None:
    assert topic_of(subject) == topic


def test_bad_nats_config_is_refused() -> None:
    from ingest.errors import ConfigError

    with pytest.raises(ConfigError):
        NatsConfig(("http://x:1",), ((HOST, 1),))
    with pytest.raises(ConfigError):
        NatsConfig(("nats://x:1",), ())


# ---- against the cluster -----------------------------------------------------------------------


def test_topics_with_dot_or_space_are_refused_at_publish(fresh: NatsCluster,
                                                         unique: Callable[[str], str]) -> None:
    """Why topic_of needs no inverse for '.' and ' ': NATS 2.9.10 does not PUBACK such a
    PUBLISH and closes the publisher's connection."""
    for topic in ("heartcheck/a.b/ecg", "heartcheck/a b/ecg"):
        _refused(Mqtt311(fresh.node("n2").mqtt_port, unique("pub")), topic)


def _refused(pub: Mqtt311, topic: str) -> None:
    try:
        info = pub.publish(topic, b"x")
        wait_until(lambda: pub.disconnects >= 1, 30, what=f"the server closing on {topic!r}")
        assert not info.is_published()
    finally:
        pub.client.loop_stop()  # paho would send it again after reconnecting, forever


def test_readings_before_the_consumer_exists_are_dropped_by_interest_retention(
        fresh: NatsCluster, tmp_path: Path, unique: Callable[[str], str]) -> None:
    """$MQTT_msgs has interest retention: published while no consumer matches, a reading is
    PUBACKed and dropped at once. Ingest's first start creates the consumer; from then on a
    stopped ingest loses nothing (the consumer keeps the backlog)."""
    dev = unique("hc")
    pub = Mqtt311(fresh.node("n3").mqtt_port, unique("pub"))
    try:
        before = _publish(pub, [dev], 20)
        msgs, _first = _stream_messages(fresh)
        ts = _worker(fresh, tmp_path / "state", None, unique("ingest")).start()
        ts.stop()
        lost = _stored(tmp_path / "state" / "ingest" / "ingest.sqlite")["readings"]
        measured("readings published before any consumer existed", published=before,
                 in_stream_after=msgs, stored=lost)
        assert lost == 0 and msgs == 0
        # the consumer now exists; nobody runs
        n = _publish(pub, [dev, unique("hc")], 50)
        assert _stream_messages(fresh)[0] >= n  # kept for the consumer
        ts = _worker(fresh, tmp_path / "state", None, unique("ingest")).start()
        wait_until(lambda: ts.service.stats.stored == n, 30, what=f"{n} stored")
        ts.stop()
        got = _stored(tmp_path / "state" / "ingest" / "ingest.sqlite")
        measured("readings published while no ingest ran, consumer kept", published=n, **got)
        assert got == {"readings": n, "keys": n, "duplicates": 0}
    finally:
        pub.close()


def _wait_stored(workers: Sequence[ThreadedService], n: int) -> None:
    wait_until(lambda: sum(w.service.stats.stored for w in workers) >= n, 60, what=f"{n} stored")


def test_two_workers_share_the_consumer_and_store_each_reading_once(
        fresh: NatsCluster, tmp_path: Path, unique: Callable[[str], str]) -> None:
    state = tmp_path / "state"
    a = _worker(fresh, state, "1", unique("ingest")).start()
    b = _worker(fresh, state, "2", unique("ingest")).start()
    pub = Mqtt311(fresh.node("n3").mqtt_port, unique("pub"))
    try:
        # rounds until each worker has some (one pull request may take a whole round), 3 at least
        devices, n = [unique("hc") for _ in range(5)], 0
        while n < 150 or not (a.service.stats.stored and b.service.stats.stored):
            assert n < 1_500, "one worker took every reading"
            for seq in range(n // 5, n // 5 + 10):
                for dev in devices:
                    pub.publish(f"heartcheck/{dev}/ecg", payload_of(dev, seq))
            pub.wait_all()
            n += 50
            _wait_stored([a, b], n)
        split = (a.service.stats.stored, b.service.stats.stored)
        sessions = {(state / "ingest" / f"session-{w}.json").read_text() for w in ("1", "2")}
    finally:
        pub.close()
        a.stop()
        b.stop()
    got = _stored(state / "ingest" / "ingest.sqlite")
    measured("two workers on one consumer", published=n, split=split, **got)
    assert sum(split) == n and all(split)
    assert got == {"readings": n, "keys": n, "duplicates": 0}
    assert len(sessions) == 1 and DURABLE in sessions.pop()  # one consumer: one session name


def test_end_to_end_acks_reach_the_device_over_mqtt311(fresh: NatsCluster, tmp_path: Path,
                                                       unique: Callable[[str], str]) -> None:
    dev = unique("hc")
    ts = _worker(fresh, tmp_path / "state", None, unique("ingest")).start()
    device = Mqtt311(fresh.node("n2").mqtt_port, unique(dev))
    try:
        device.subscribe(f"heartcheck/{dev}/ack")
        for seq in range(30):
            device.publish(f"heartcheck/{dev}/ecg", payload_of(dev, seq))
        device.wait_all()

        def acked() -> set[int]:
            with device.lock:
                acks = [decode_ack(p) for t, p in device.got if t == f"heartcheck/{dev}/ack"]
            assert all(d == dev for d, _ in acks)
            return {s for _, ranges in acks for lo, hi in ranges for s in range(lo, hi + 1)}

        wait_until(lambda: acked() == set(range(30)), 45, what="acks for seq 0..29")
        assert ts.service.source.stats.acks_published >= 1
    finally:
        device.close()
        ts.stop()


class NeverAcks(NatsSource):
    """A worker killed between its commit and its acks: it stores, and JetStream never hears."""

    def ack_broker(self, deliveries: Sequence[InboundMessage]) -> int:
        return 0


def test_what_a_worker_never_acked_goes_to_the_other_after_ack_wait(
        fresh: NatsCluster, tmp_path: Path, unique: Callable[[str], str]) -> None:
    ack_wait = 2.0
    state = tmp_path / "state"
    stuck_source = NeverAcks(NatsConfig(_nats_urls(fresh), _mqtt_servers(fresh), unique("stuck"),
                                        worker="1", ack_wait_s=ack_wait), SystemClock(), announce=False)
    stuck = _worker(fresh, state, "1", unique("stuck"), ack_wait_s=ack_wait, source=stuck_source).start()
    pub = Mqtt311(fresh.node("n3").mqtt_port, unique("pub"))
    try:
        n = _publish(pub, [unique("hc"), unique("hc")], 40)
        wait_until(lambda: stuck.service.stats.stored == n, 30, what=f"{n} stored by the stuck worker")
        delivered = time.monotonic()
        stuck.stop()
        good = _worker(fresh, state, "2", unique("ingest"), ack_wait_s=ack_wait).start()
        wait_until(lambda: good.service.stats.duplicates >= n, 30, what=f"{n} redelivered")
        after = time.monotonic() - delivered
        good.stop()
    finally:
        pub.close()
    got = _stored(state / "ingest" / "ingest.sqlite")
    measured("never acked, redelivered to the other worker", ack_wait_s=ack_wait, published=n,
             redelivered_after_s=round(after, 1), **got)
    assert got == {"readings": n, "keys": n, "duplicates": n}
    assert after >= ack_wait * 0.9


def test_malformed_payloads_and_foreign_topics_are_quarantined_and_storing_goes_on(
        fresh: NatsCluster, tmp_path: Path, unique: Callable[[str], str]) -> None:
    dev = unique("hc")
    ts = _worker(fresh, tmp_path / "state", None, unique("ingest")).start()
    pub = Mqtt311(fresh.node("n1").mqtt_port, unique("pub"))
    bad = {f"heartcheck/{dev}/ecg": b"not a reading",
           "heartcheck//ecg": payload_of(dev, 100),
           "heartcheck/*/ecg": payload_of(dev, 101),
           "heartcheck/h\u00e9/ecg": payload_of(dev, 102)}
    try:
        for topic, data in bad.items():
            pub.publish(topic, data)
        _publish(pub, [dev], 10)
        wait_until(lambda: ts.service.stats.quarantined == len(bad) and ts.service.stats.stored == 10,
                   20, what="4 quarantined, 10 stored")
    finally:
        pub.close()
        ts.stop()
    with sqlite3.connect(tmp_path / "state" / "ingest" / "ingest.sqlite") as con:
        rows = {t: (r, bytes(raw)) for t, r, raw in con.execute("SELECT topic, reason, raw FROM quarantine")}
    measured("quarantined from the cluster", rows={t: r for t, (r, _) in rows.items()})
    assert rows[f"heartcheck/{dev}/ecg"] == ("bad-magic", b"not a reading")
    assert rows["$MQTT.msgs.heartcheck./.ecg"] == ("bad-topic", payload_of(dev, 100))
    assert rows["heartcheck/*/ecg"] == ("bad-topic", payload_of(dev, 101))
    assert rows["heartcheck/h\u00e9/ecg"] == ("bad-topic", payload_of(dev, 102))


def _nats_node_of(c: NatsCluster, name: str) -> str | None:
    """The node holding the NATS connection named `name` (/connz)."""
    for node in c.running():
        connz = node.monitor("/connz")
        conns = connz.get("connections") if isinstance(connz, dict) else None
        if isinstance(conns, list) and any(isinstance(x, dict) and x.get("name") == name for x in conns):
            return node.name
    return None


def test_a_node_killed_under_ingest_loses_nothing(fresh: NatsCluster, tmp_path: Path,
                                                  unique: Callable[[str], str]) -> None:
    """kill -9 of the node holding ingest's NATS connection: nats-py reconnects to a survivor
    (and paho moves to the next MQTT server if its node died too); readings published through
    the failover are all stored and confirmed."""
    cid, dev = unique("ingest"), unique("hc")
    config = ServiceConfig(state_dir=tmp_path / "state", host=HOST, port=fresh.node("n1").mqtt_port,
                           client_id=cid, acks=True, nats_servers=_nats_urls(fresh),
                           mqtt_servers=_mqtt_servers(fresh), reconnect_max_s=1.0)
    out = io.StringIO()
    ts = ThreadedService(IngestService(config, SystemClock(), out=out), out).start()
    victim = wait_until(lambda: _nats_node_of(fresh, cid), 30, what="ingest's NATS connection")
    assert isinstance(victim, str)
    survivor = next(n for n in fresh if n.name != victim)
    device = Mqtt311(survivor.mqtt_port, unique(dev), clean=False)  # acks wait in its session
    try:
        device.subscribe(f"heartcheck/{dev}/ack")
        for seq in range(20):
            device.publish(f"heartcheck/{dev}/ecg", payload_of(dev, seq))
        started = time.monotonic()
        fresh.kill(victim)
        for seq in range(20, 60):
            device.publish(f"heartcheck/{dev}/ecg", payload_of(dev, seq))
        device.wait_all(60)
        wait_until(lambda: ts.service.stats.stored == 60, 60, what="60 stored through the failover")
        src = ts.service.source
        assert isinstance(src, NatsSource)
        assert src.stats.connects >= 2  # reconnected to a survivor

        def acked() -> set[int]:
            with device.lock:
                return {s for t, p in device.got if t.endswith("/ack")
                        for lo, hi in decode_ack(p)[1] for s in range(lo, hi + 1)}

        wait_until(lambda: acked() >= set(range(60)), 60, what="acks for seq 0..59")
        measured("kill -9 of ingest's node", node=victim, stored=ts.service.stats.stored,
                 acks_published=src.stats.acks_published,
                 duplicates=ts.service.stats.duplicates,
                 all_stored_after_s=round(time.monotonic() - started, 1),
                 nats_reconnects=src.stats.connects - 1, mqtt_connects=src.mqtt_connects)
    finally:
        device.client.disconnect()
        device.client.loop_stop()
        Mqtt311(survivor.mqtt_port, device.client_id).close()  # clean session: its session goes
        ts.stop()
        fresh.restart(victim)


def test_python_m_ingest_with_nats(fresh: NatsCluster, tmp_path: Path, unique: Callable[[str], str],
                                   spawn_ingest: Callable[..., object]) -> None:
    """The command line the stack runs: python -m ingest --nats ... --mqtt-servers ... --worker K."""
    import signal
    import subprocess
    import sys

    state, dev = tmp_path / "state", unique("hc")
    argv = [sys.executable, "-m", "ingest", "--state-dir", str(state), "--acks", "--worker", "1",
            "--nats", ",".join(_nats_urls(fresh)),
            "--mqtt-servers", ",".join(f"{h}:{p}" for h, p in _mqtt_servers(fresh))]
    proc = spawn_ingest(argv)
    assert isinstance(proc, subprocess.Popen)
    wait_until(lambda: (state / "ingest" / "ready-1.json").exists() or proc.poll() is not None, 30,
               what="ready-1.json")
    assert proc.poll() is None, (tmp_path / "ingest.log").read_text()
    pub = Mqtt311(fresh.node("n2").mqtt_port, unique("pub"))
    try:
        _publish(pub, [dev], 10)
        db = state / "ingest" / "ingest.sqlite"
        wait_until(lambda: _stored(db)["readings"] == 10, 45, what="10 stored by python -m ingest")
    finally:
        pub.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "ingest.log").read_text()


def test_the_mqtt_publisher_moves_to_the_next_server(fresh: NatsCluster,
                                                     unique: Callable[[str], str]) -> None:
    """--mqtt-servers: the first one does not answer; acks and status go through the next."""
    from lab.stack.ports import free_port

    dead = (HOST, free_port())
    source = NatsSource(NatsConfig(_nats_urls(fresh), (dead, (HOST, fresh.node("n2").mqtt_port)),
                                   unique("ingest"), reconnect_min_s=0.1, reconnect_max_s=0.2),
                        SystemClock())
    source.start()
    try:
        wait_until(source.ready.is_set, 45, what="ready through the second MQTT server")
        assert source.stats.connect_failures >= 1 and source.mqtt_connects == 1
    finally:
        source.stop()
