"""The stack's Prometheus endpoints, scraped while it runs (docs/metrics.md): `ecgpipe up`
serves them on free ports and records them in the state dir, `status` shows them, the ingest
counter follows the store, and the fleet's outbox gauge rises while ingest is dead and falls
once it is back. Also with two ingest workers and a fleet in two processes; and, without a
stack, how the records are read (lab/stack/metrics.py)."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ecgcore.files import read_json, write_json_atomic
from lab.stack.levels import stored_total
from lab.stack.metrics import metrics_records
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.lab.test_cli import cj, cli

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of an endpoint, parsed by prometheus_client's parser."""
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a loopback URL the stack recorded
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def total(samples: Samples, name: str) -> float:
    """The sum of a metric's series (over workers, fleets, kinds)."""
    return sum(v for (n, _), v in samples.items() if n == name)


def record(state: Path, path: str) -> dict[str, object]:
    doc = read_json(state / path)
    assert isinstance(doc, dict), f"{path} missing or damaged"
    return doc


def url_of(state: Path, path: str) -> str:
    return str(record(state, path)["url"])


def stored_counter(state: Path) -> float:
    return total(scrape(url_of(state, "ingest/metrics.json")), "ecgpipe_ingest_readings_stored_total")


def outbox(state: Path) -> float:
    return total(scrape(url_of(state, "fleet/metrics.json")), "ecgpipe_fleet_outbox_readings")


@pytest.mark.broker
@pytest.mark.slow
def test_metrics_move_with_the_readings_through_an_ingest_outage(tmp_path: Path) -> None:
    s = tmp_path / "stack"
    sd = StateDir(s)
    cli(s, "up", "--devices", "3")
    try:
        st = cj(s, "status")
        assert set(st["metrics"]) == {"ingest", "fleet"}
        for name, comp in (("ingest", "ingest"), ("fleet", "devices")):
            ep, rec = st["metrics"][name], record(s, f"{name}/metrics.json")
            assert ep["live"] is True and ep["pid"] == st[comp]["pid"] and ep["host"] == "127.0.0.1"
            assert ep["url"] == f"http://127.0.0.1:{ep['port']}/metrics"
            assert rec["name"] == name and all(rec[k] == ep[k] for k in ("pid", "host", "port", "url"))
        assert f"metrics: ingest {st['metrics']['ingest']['url']}" in cli(s, "status").stdout

        fleet = scrape(url_of(s, "fleet/metrics.json"))
        assert total(fleet, "ecgpipe_fleet_devices") == 3
        assert total(fleet, "ecgpipe_fleet_devices_connected") == 3
        wait_until(lambda: stored_counter(s) >= 10, 60, what="the ingest counter to reach 10")
        for _ in range(3):  # the counter is moved just after each commit: never ahead of the store
            before = stored_counter(s)
            in_store = stored_total(sd)
            assert before <= in_store
            wait_until(lambda n=in_store: stored_counter(s) >= n, 20,
                       what=f"the counter to catch up with the store's {in_store}")
        ing = scrape(url_of(s, "ingest/metrics.json"))
        received = total(ing, "ecgpipe_ingest_readings_received_total")
        outcomes = sum(total(ing, f"ecgpipe_ingest_readings_{k}_total")
                       for k in ("stored", "duplicate", "quarantined"))
        assert received == outcomes > 0
        assert total(ing, "ecgpipe_ingest_acks_sent_total") > 0  # end-to-end, the default
        assert total(ing, "ecgpipe_ingest_capture_to_store_seconds_count") == total(
            ing, "ecgpipe_ingest_readings_stored_total")
        stored = total(ing, "ecgpipe_ingest_readings_stored_total")
        wait_until(lambda: total(scrape(url_of(s, "fleet/metrics.json")),  # sampled once a second
                                 "ecgpipe_fleet_readings_generated_total") >= stored, 20,
                   what="the fleet's generated counter to pass what ingest stored")

        old_pid = record(s, "ingest/metrics.json")["pid"]
        cli(s, "kill", "ingest")
        assert cj(s, "status")["metrics"]["ingest"]["live"] is False
        low = outbox(s)
        high = wait_until(lambda: (v := outbox(s)) >= low + 6 and v, 40,
                          what="the fleet's outbox gauge to grow while ingest is dead")
        assert isinstance(high, float)

        cli(s, "start", "ingest")
        again = record(s, "ingest/metrics.json")
        assert again["pid"] != old_pid and cj(s, "status")["metrics"]["ingest"]["live"] is True
        peak = outbox(s)
        assert peak >= high
        wait_until(lambda: outbox(s) <= peak / 2, 90, what="the outbox gauge to fall once ingest is back")
        wait_until(lambda: stored_counter(s) > 0, 30, what="the new ingest process to count")
    finally:
        cli(s, "down", check=False)


@pytest.mark.broker
@pytest.mark.slow
def test_every_worker_and_fleet_process_has_its_own_endpoint(tmp_path: Path) -> None:
    s = tmp_path / "stack"
    sd = StateDir(s)
    cli(s, "up", "--devices", "4", "--ingest-workers", "2", "--fleet-procs", "2")
    try:
        eps = cj(s, "status")["metrics"]
        assert set(eps) == {"ingest-1", "ingest-2", "fleet-1", "fleet-2"}
        line = next(ln for ln in cli(s, "status").stdout.splitlines() if ln.startswith("metrics:"))
        assert [w.split()[0] for w in line.removeprefix("metrics: ").split(", ")] == [
            "ingest-1", "ingest-2", "fleet-1", "fleet-2"]
        assert all(e["live"] for e in eps.values()) and len({e["port"] for e in eps.values()}) == 4
        for name, ep in eps.items():
            label = "worker" if name.startswith("ingest") else "fleet"
            samples = scrape(ep["url"])
            assert {dict(lbl).get(label) for (_, lbl) in samples} == {name}
        assert sum(total(scrape(eps[f]["url"]), "ecgpipe_fleet_devices") for f in ("fleet-1", "fleet-2")) == 4

        def workers_stored() -> float:
            return sum(total(scrape(eps[w]["url"]), "ecgpipe_ingest_readings_stored_total")
                       for w in ("ingest-1", "ingest-2"))

        wait_until(lambda: workers_stored() >= 12, 60, what="the workers' counters to reach 12")
        before = workers_stored()
        in_store = stored_total(sd)
        assert before <= in_store
        wait_until(lambda: workers_stored() >= in_store, 20, what="the workers to count what is stored")
    finally:
        cli(s, "down", check=False)


def test_records_are_read_in_order_with_liveness_and_damage_named(tmp_path: Path) -> None:
    me = {"host": "127.0.0.1", "port": 9, "url": "http://127.0.0.1:9/metrics", "at": 1.0}
    ing = tmp_path / "ingest"
    write_json_atomic(ing / "metrics-10.json", {**me, "name": "ingest-10", "pid": os.getpid()})
    write_json_atomic(ing / "metrics-2.json", {**me, "name": "ingest-2", "pid": 2**22 + 1})  # above pid_max
    write_json_atomic(tmp_path / "fleet" / "metrics.json", {**me, "name": "fleet", "pid": os.getpid()})
    (tmp_path / "fleet" / "metrics-1.json").write_text("{half")
    (tmp_path / "fleet" / "devices.json").write_text("{}")  # not a record
    found = metrics_records(tmp_path)
    assert list(found) == ["ingest-2", "ingest-10", "fleet", "fleet-1"]
    assert found["ingest-10"]["live"] is True and found["ingest-10"]["url"] == me["url"]
    assert found["ingest-2"]["live"] is False  # no such pid: the process that wrote it is gone
    assert found["fleet-1"]["live"] is False and "metrics-1.json" in found["fleet-1"]["error"]
    assert metrics_records(tmp_path / "nothing-here") == {}
