"""A stack on the 3-node NATS cluster (`up --broker nats-cluster`, secure: logins, per-device
permissions, TLS with client certificates on every port), through the CLI: the nodes are
components, the devices (MQTT 3.1.1) and ingest (a JetStream consumer) reach
them through the link proxies, a cut of ingest's link queues at the cluster, a kill -9 of the
stream's leader loses nothing, and the ledger holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgcore.files import read_json
from lab.stack.levels import Stable, stored_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.lab.test_cli import cj, cli
from tests.lab.test_cli_faults import one_line

pytestmark = [pytest.mark.broker, pytest.mark.slow]

NODES = ("nats-1", "nats-2", "nats-3")


def queued(sd: StateDir) -> int:
    values = (read_json(sd.root / "watch" / "latest.json") or {}).get("values") or {}
    return int(values.get("store/messages/count", 0))


def test_the_cluster_stack_queues_a_cut_and_survives_its_leaders_kill(tmp_path: Path) -> None:
    s = tmp_path / "stack"
    sd = StateDir(s)
    cli(s, "up", "--devices", "4", "--broker", "nats-cluster", "--delivery", "broker-ack")
    try:
        conf = (s / "broker" / "nats-1" / "node.conf").read_text()
        assert "include" in conf and "verify: true" in conf  # logins, and TLS with certificates
        st = cj(s, "status")
        assert st["components"][:3] == list(NODES)
        assert st["broker"]["nodes"] == dict.fromkeys(NODES, "running")
        assert len(st["proxy-devices"]["upstreams"]) == 3
        wait_until(lambda: stored_total(sd) >= 12, 60, what="readings stored from the cluster")

        cli(s, "cut", "ingest")
        wait_until(lambda: queued(sd) >= 8, 30, what="readings queued at the cluster while ingest is cut")
        cli(s, "heal", "ingest")
        wait_until(lambda: queued(sd) == 0, 60, what="the cluster's queue drained")

        line = one_line(cli(s, "kill", "nats-leader").stdout)
        assert line.startswith("sent SIGKILL to nats-") and line.endswith("now exited")
        n = stored_total(sd)
        wait_until(lambda: stored_total(sd) >= n + 8, 90, what="readings stored with one node down")
        cli(s, "start", "nats-leader")  # every node that is not running, then the cluster ready
        assert cj(s, "status")["broker"]["nodes"] == dict.fromkeys(NODES, "running")
        cli(s, "kill", "devices", "--signal", "TERM")
        wait_until(Stable(sd), 60, what="ingest quiet once the fleet stopped")
    finally:
        cli(s, "down")
    t = cj(s, "report")["totals"]
    assert t["lost"] == 0 and t["evicted"] == 0, t
    assert t["generated"] == t["stored"] + t["buffered"] and t["stored"] >= 24, t
