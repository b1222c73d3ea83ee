"""devices/metrics.py: the gauges follow the fleet's state, the counters move by what its totals
grew, names follow Prometheus' conventions; a fleet against a real broker samples itself; bad
metrics options stop `python -m devices` with one line."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from devices.fleet import Fleet
from devices.metrics import FleetMetrics, FleetSample
from ecgcore.metrics_http import MetricsServer
from lab.stack.broker import RunningBroker
from tests.devices.conftest import fleet_config

REPO = Path(__file__).resolve().parents[2]
NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def value(registry: CollectorRegistry, sample: str, **labels: str) -> float:
    v = registry.get_sample_value(sample, labels)
    assert v is not None, f"no sample {sample}{labels}"
    return v


def test_sample_sets_gauges_and_moves_counters_by_growth() -> None:
    m = FleetMetrics("fleet-2")
    r, f = m.registry, {"fleet": "fleet-2"}
    m.sample(FleetSample(devices=5, connected=4, outbox=10, evicted=1, generated=20,
                         published_live=15, published_backlog=2))
    m.sample(FleetSample(devices=5, connected=0, outbox=30, evicted=4, generated=40,
                         published_live=15, published_backlog=9))
    assert value(r, "ecgpipe_fleet_devices", **f) == 5
    assert value(r, "ecgpipe_fleet_devices_connected", **f) == 0
    assert value(r, "ecgpipe_fleet_outbox_readings", **f) == 30
    assert value(r, "ecgpipe_fleet_outbox_evicted_total", **f) == 4
    assert value(r, "ecgpipe_fleet_readings_generated_total", **f) == 40
    assert value(r, "ecgpipe_fleet_readings_published_total", kind="live", **f) == 15
    assert value(r, "ecgpipe_fleet_readings_published_total", kind="backlog", **f) == 9
    # a counter never goes back, whatever a sample says
    m.sample(FleetSample(devices=5, connected=5, outbox=0, evicted=0, generated=0,
                         published_live=0, published_backlog=0))
    assert value(r, "ecgpipe_fleet_readings_generated_total", **f) == 40
    assert value(r, "ecgpipe_fleet_outbox_readings", **f) == 0


def test_names_follow_prometheus_conventions() -> None:
    m = FleetMetrics()
    fams = [fam for fam in text_string_to_metric_families(generate_latest(m.registry).decode())
            if not fam.name.endswith("_created")]  # prometheus_client's own series
    types = {fam.name: fam.type for fam in fams}
    assert types == {
        "ecgpipe_fleet_devices": "gauge", "ecgpipe_fleet_devices_connected": "gauge",
        "ecgpipe_fleet_outbox_readings": "gauge", "ecgpipe_fleet_outbox_evicted": "counter",
        "ecgpipe_fleet_readings_generated": "counter", "ecgpipe_fleet_readings_published": "counter",
    }
    for fam in fams:
        assert NAME_RE.fullmatch(fam.name) and fam.documentation
        for s in fam.samples:
            assert s.labels.get("fleet") == "fleet", s
            if fam.type == "counter":
                assert s.name == fam.name + "_total", s.name


@pytest.mark.broker
def test_a_fleet_samples_itself_while_it_runs(tmp_path: Path, broker: RunningBroker,
                                              unique: Callable[[str], str]) -> None:
    metrics = FleetMetrics()
    r, f = metrics.registry, {"fleet": "fleet"}
    fleet = Fleet(fleet_config(tmp_path, broker, unique("hc"), devices=3), out=io.StringIO(),
                  metrics=metrics)
    fleet.start()
    try:
        live = {**f, "kind": "live"}
        deadline = time.monotonic() + 30  # the loop is stepped here, until the metrics show 10
        while time.monotonic() < deadline and (
                r.get_sample_value("ecgpipe_fleet_readings_published_total", live) or 0) < 10:
            fleet.step()
    finally:
        fleet.shutdown()
    assert value(r, "ecgpipe_fleet_devices", **f) == 3
    assert value(r, "ecgpipe_fleet_readings_published_total", kind="live", **f) >= 10
    generated = value(r, "ecgpipe_fleet_readings_generated_total", **f)
    assert generated >= value(r, "ecgpipe_fleet_readings_published_total", kind="live", **f)
    assert generated <= sum(d.stats.generated for d in fleet.devices)  # sampled, never ahead
    assert value(r, "ecgpipe_fleet_outbox_evicted_total", **f) == 0


def run_devices(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devices", "--state-dir", str(tmp_path), "--host",
                           "127.0.0.1", "--port", "1", "--devices", "2", "--delivery", "broker-ack",
                           "--ecg-source", "synthetic", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False)


@pytest.mark.parametrize(("args", "words"), [
    (["--metrics-port", "-1"], "metrics port '-1' is not a number in 0..65535"),
    (["--metrics-port", "65536"], "metrics port '65536' is not a number in 0..65535"),
    (["--metrics-port", "65535", "--procs", "2"], "leaves no port for each of the 2 processes"),
    (["--metrics-port", "0", "--metrics-host", " "], "--metrics-host must not be empty"),
])
def test_bad_metrics_options_are_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    res = run_devices(tmp_path, *args)
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert words in line


def test_a_taken_metrics_port_stops_the_fleet_at_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run_devices(tmp_path, "--metrics-port", str(port))
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("devices: error: ") and f"127.0.0.1:{port}" in line and "in use" in line
    assert not (tmp_path / "fleet" / "outbox.sqlite").exists()  # nothing started


def test_the_record_names_the_endpoint(tmp_path: Path) -> None:
    m = FleetMetrics("fleet-1")
    server = MetricsServer(m.registry, "127.0.0.1", 0)
    try:
        server.write_record(tmp_path / "fleet" / "metrics-1.json", name="fleet-1", at=5.0)
        doc = json.loads((tmp_path / "fleet" / "metrics-1.json").read_text())
        with urllib.request.urlopen(doc["url"], timeout=10) as resp:  # noqa: S310 - a URL we made
            assert 'ecgpipe_fleet_devices{fleet="fleet-1"} 0.0' in resp.read().decode()
    finally:
        server.close()
