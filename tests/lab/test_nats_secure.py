"""Measured: logins, permissions and TLS on the 3-node NATS cluster (docs/nats.md facts 26–29),
from the identities `ecgpipe provision` makes (lab/provision/nats_users.py renders the users).

One secure cluster serves the module: every node includes the users file and requires TLS with a
certificate from the stack's CA on its MQTT, client and route ports (`wait_ready`'s round trip,
logged in as the watcher, shows the routes formed over TLS).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig

from ecgcore.credentials import ClientCredentials, SecretsDir, client_tls_context
from lab.provision.provision import provision
from lab.stack.nats_cluster import NatsCluster
from lab.stack.nats_config import NodeSecurity
from tests.conftest import wait_until
from tests.lab.natsutil import Mq

NO_NATS = shutil.which("nats-server") is None and not Path("/usr/sbin/nats-server").exists()
pytestmark = [pytest.mark.broker,
              pytest.mark.skipif(NO_NATS, reason="nats-server is not installed (scripts/setup installs it)")]

DEVICES = ["hc-0000", "hc-0001"]


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsCluster, SecretsDir]]:
    root = tmp_path_factory.mktemp("nats-secure")
    provision(root / "secrets", DEVICES)
    sd = SecretsDir(root / "secrets")
    nodes = sd.cluster_tls()
    security = NodeSecurity(sd.nats_users_file, nodes.ca, nodes.cert, nodes.key)
    cluster = NatsCluster(root / "broker", security=security, probe_login=sd.client("watcher"))
    cluster.start(deadline_s=60)
    try:
        yield cluster, sd
    finally:
        cluster.stop()


def mqtt_port(c: NatsCluster, i: int = 0) -> int:
    return [n.mqtt_port for n in c][i]


def test_the_users_file_holds_hashes_not_passwords(secure: tuple[NatsCluster, SecretsDir]) -> None:
    _, sd = secure
    text = sd.nats_users_file.read_text()
    assert sd.nats_users_file.stat().st_mode & 0o777 == 0o600
    for name in (*DEVICES, "ingest", "watcher", "observer"):
        creds = sd.client(name, tls=False)
        assert creds.password not in text
        line = next(x for x in text.splitlines() if f'user: "{name}"' in x)
        stored = line.split('password: "')[1].split('"')[0]
        assert bcrypt.checkpw(creds.password.encode(), stored.encode())


def test_a_device_reaches_only_its_own_topics(secure: tuple[NatsCluster, SecretsDir],
                                              unique: Callable[[str], str]) -> None:
    cluster, sd = secure
    dev = Mq(mqtt_port(cluster, 0), "hc-0000", clean=False, login=sd.client("hc-0000")).connected()
    reader = Mq(mqtt_port(cluster, 1), unique("observer"), login=sd.client("observer")).connected()
    try:
        assert reader.subscribe("heartcheck/+/ecg") == [1]
        # its own acks and ingest's status: granted; anyone else's acks, or everything: refused
        assert dev.subscribe("heartcheck/hc-0000/ack") == [1]
        assert dev.subscribe("heartcheck/service/ingest/status/#") == [1]
        for other in ("heartcheck/hc-0001/ack", "#", "$MQTT/sub/#", "heartcheck/+/ecg"):
            assert dev.subscribe(other) == [128], other
        # its own reading is PUBACKed and delivered; one in another's name is PUBACKed (MQTT
        # 3.1.1 has no way to refuse it) and dropped
        mids = {dev.publish("heartcheck/hc-0001/ecg", b"forged"): "forged",
                dev.publish("heartcheck/hc-0000/ecg", b"own"): "own"}
        wait_until(lambda: dev.acked_count(mids) == 2, 45, what="both PUBACKs")
        wait_until(lambda: reader.got, 45, what="the device's own reading")
        ingest = Mq(mqtt_port(cluster, 2), unique("ingest-acks"), login=sd.client("ingest")).connected()
        ingest.publish("heartcheck/hc-0001/ack", b"for B")
        ingest.publish("heartcheck/hc-0000/ack", b"for A")
        wait_until(lambda: dev.got, 45, what="the device's own ack")
        ingest.close()
        assert [(g.topic, g.payload) for g in reader.got] == [("heartcheck/hc-0000/ecg", b"own")]
        assert [(g.topic, g.payload) for g in dev.got] == [("heartcheck/hc-0000/ack", b"for A")]
    finally:
        dev.close()
        reader.close()


def test_wrong_logins_and_plaintext_are_refused(secure: tuple[NatsCluster, SecretsDir],
                                                unique: Callable[[str], str]) -> None:
    cluster, sd = secure
    good = sd.client("hc-0000")
    assert good.tls is not None
    wrong = Mq(mqtt_port(cluster), unique("wrong"),
               login=ClientCredentials("hc-0000", "device", "not-the-password", good.tls))
    assert wrong.wait_connack()[0] == 135  # paho reports MQTT 3.1.1 return code 5 as 0x87, Not authorized
    wrong.client.loop_stop()
    # TLS without a client certificate, and plaintext: closed without a CONNACK
    ctx = ssl.create_default_context(cafile=str(good.tls.ca))
    assert _answer(mqtt_port(cluster), ctx) == b""
    assert _answer(mqtt_port(cluster), None) == b""


CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x0a\x00\x00"  # MQTT 3.1.1, clean, no client id


def _answer(port: int, ctx: ssl.SSLContext | None) -> bytes:
    """What the node answers to an anonymous CONNECT (b"": nothing, the connection closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            if ctx is None:
                raw.sendall(CONNECT)
                return raw.recv(4)
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(CONNECT)
                return tls.recv(4)  # TLS 1.3: a refused client certificate shows at the first read
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return b""


async def _nats(cluster: NatsCluster, creds: ClientCredentials, **kw: Any) -> NatsClient:
    """A NATS client connection to node 1, logged in as `creds` over TLS."""
    assert creds.tls is not None
    port = next(iter(cluster)).ports.client
    return await nats.connect(f"nats://127.0.0.1:{port}", user=creds.username, password=creds.password,
                              tls=client_tls_context(creds.tls), allow_reconnect=False, **kw)


def test_a_device_login_is_mqtt_only(secure: tuple[NatsCluster, SecretsDir]) -> None:
    cluster, sd = secure

    async def run() -> str:
        try:
            nc = await _nats(cluster, sd.client("hc-0000"))
        except (nats.errors.Error, OSError) as exc:
            return str(exc)
        await nc.close()
        return "connected"

    assert "authorization violation" in asyncio.run(run()).lower()


def test_ingest_may_use_its_consumer_and_nothing_else(secure: tuple[NatsCluster, SecretsDir],
                                                      unique: Callable[[str], str]) -> None:
    cluster, sd = secure
    durable = unique("ecgpipe-ingest").replace(".", "-")

    async def run() -> tuple[int, list[str]]:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await _nats(cluster, sd.client("ingest"), error_cb=on_error)
        try:
            js = nc.jetstream(timeout=3)
            info = await js.add_consumer("$MQTT_msgs", ConsumerConfig(
                durable_name=durable, filter_subject="$MQTT.msgs.heartcheck.*.ecg",
                ack_policy=AckPolicy.EXPLICIT))
            with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
                await js.delete_stream("$MQTT_msgs")
            with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
                await js.delete_consumer("$MQTT_msgs", durable)
            return info.num_pending, errors
        finally:
            await nc.close()

    _, errors = asyncio.run(run())
    assert any("permissions violation" in e.lower() and "stream.delete" in e.lower() for e in errors), errors
    assert cluster.stream() is not None  # still there
