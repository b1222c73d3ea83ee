"""kill -9 of the ingest service in each delivery mode: the ledger says what the mode predicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.report.summary import build_report
from lab.stack import control as stack
from lab.stack.levels import Stable, buffered_total, caught_up, generated_total, stored_total
from lab.stack.statedir import StackConfig, StateDir
from tests.conftest import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DEVICES = 5
MAX_QUEUED = 10


def run_outage(tmp_path: Path, delivery: str) -> tuple[dict, int]:
    """Up → flowing → kill -9 ingest until the broker queue must overflow → restart →
    drain → stop the fleet → report. Returns the report and the readings generated while
    ingest was dead."""
    sd = StateDir(tmp_path / delivery)
    cfg = StackConfig(devices=DEVICES, delivery=delivery, max_queued=MAX_QUEUED, ack_timeout=2.0,
                      id_prefix=f"t{delivery[:2]}")
    stack.up(sd, cfg)
    try:
        wait_until(lambda: stored_total(sd) >= 2 * DEVICES, 30, what="readings stored before the outage")
        stack.kill(sd, "ingest", "KILL")
        assert sd.component("ingest").state() == "exited"
        g0 = generated_total(sd)
        # three times what the broker queue holds, so broker-ack must overflow
        wait_until(lambda: generated_total(sd) >= g0 + 3 * MAX_QUEUED, 30, what="readings during the outage")
        if delivery == "end-to-end":
            assert buffered_total(sd) >= 3 * MAX_QUEUED  # piling up in the device outboxes
        stack.start(sd, "ingest")
        g1 = generated_total(sd)
        wait_until(lambda: caught_up(sd) and (delivery != "end-to-end" or buffered_total(sd) <= 2 * DEVICES),
                   60, what="backlogs drained")
        stack.kill(sd, "devices", "TERM")
        wait_until(Stable(sd), 20, what="ingest quiet after the fleet stopped")
    finally:
        stack.down(sd)
    return build_report(sd), g1 - g0


def test_end_to_end_loses_nothing(tmp_path: Path) -> None:
    rep, outage = run_outage(tmp_path, "end-to-end")
    t = rep["totals"]
    assert rep["balanced"]
    assert t["lost"] == 0, rep
    assert t["evicted"] == 0
    assert t["stored"] + t["buffered"] == t["generated"]
    assert outage >= 3 * MAX_QUEUED


def test_broker_ack_loses_exactly_what_the_broker_dropped(tmp_path: Path) -> None:
    rep, outage = run_outage(tmp_path, "broker-ack")
    sd = StateDir(tmp_path / "broker-ack")
    t = rep["totals"]
    assert rep["balanced"]
    assert t["lost"] > 0
    # the watcher may sample the final counter a moment after the drain
    wait_until(lambda: build_report(sd)["broker"]["dropped"] == t["lost"], 10,
               what=f"broker dropped == lost ({t['lost']})")
    assert t["lost"] <= outage


def test_fire_and_forget_loses_the_outage(tmp_path: Path) -> None:
    rep, outage = run_outage(tmp_path, "fire-and-forget")
    t = rep["totals"]
    assert rep["balanced"]
    assert t["lost"] > 0
    # what was produced while ingest was down is gone (give or take the readings in flight at the edges)
    assert abs(t["lost"] - outage) <= 2 * DEVICES, (t, outage)
    assert rep["broker"]["dropped"] == 0  # QoS 0 to an offline session is not even counted as dropped
