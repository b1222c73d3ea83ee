"""End-to-end re-sends a copy that was really lost, and only then (devices/resend.py), against
the real stack: a broker restarted without persistence while it held readings for a frozen
ingest, and an ingest session that expired while ingest was away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.checker import check
from lab.history import load_history
from lab.history.brokerstats import broker_stats
from lab.stack import control as stack
from lab.stack.levels import Stable, buffered_total, generated_total, stored_total
from lab.stack.statedir import StackConfig, StateDir
from tests.conftest import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DEVICES = 4


def settle_and_check(sd: StateDir) -> Any:
    """Let the backlog drain, stop the fleet, and check the history."""
    wait_until(lambda: buffered_total(sd) <= 2 * DEVICES and stored_total(sd) > 0, 60,
               what="the backlog delivered")
    stack.kill(sd, "devices", "TERM")
    wait_until(Stable(sd), 20, what="ingest quiet after the fleet stopped")
    return check(load_history(sd.root))


def held_by_broker(sd: StateDir) -> float:
    stats = broker_stats(sd.root)
    return float(stats.get("stored_messages") or 0)


def test_a_broker_restart_without_persistence_loses_copies_that_are_then_re_sent(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "s")
    cfg = StackConfig(devices=DEVICES, delivery="end-to-end", persistence=False, ack_timeout=2.0,
                      ingest_keepalive=2, id_prefix="rr")
    stack.up(sd, cfg)
    try:
        wait_until(lambda: stored_total(sd) >= 2 * DEVICES, 30, what="readings stored first")
        base = held_by_broker(sd)
        stack.kill(sd, "ingest", "STOP")  # frozen: the broker queues for it until its keepalive runs out
        wait_until(lambda: held_by_broker(sd) >= base + 2 * DEVICES, 20,
                   what="readings PUBACKed and held by the broker for the frozen ingest")
        g0 = generated_total(sd)
        held = held_by_broker(sd) - base
        stack.kill(sd, "broker", "KILL")
        stack.start(sd, "broker")  # no persistence: the held readings are gone
        stack.resume(sd, "ingest")
        result = settle_and_check(sd)
    finally:
        stack.down(sd)
    t = result.totals
    assert t.lost == 0 and t.evicted == 0, result.as_dict()["totals"]
    assert g0 > 2 * DEVICES
    lost_and_found = result.cost.resent_by_reason
    # what the broker lost was sent again: normally on the empty session (session-lost) or
    # ingest's new one (ingest-session-lost); once, under the full suite's load on 2 cores,
    # only the ack-timeout probe had fired (and nothing was lost): which trigger comes first
    # depends on the timing of the reconnects, the guarantee above does not
    assert sum(lost_and_found.get(r, 0) for r in ("session-lost", "ingest-session-lost", "probe")) > 0, \
        lost_and_found
    # the re-sends are what was in flight, not a flood: each held reading at most twice (when the
    # device reconnects to an empty broker, and again when ingest announces its new session,
    # for copies sent before ingest subscribed again), and a probe a device
    assert result.cost.resent <= 2 * (held + 2 * DEVICES), (result.cost, held)


def test_an_expired_ingest_session_is_announced_and_its_readings_re_sent(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "s")
    cfg = StackConfig(devices=DEVICES, delivery="end-to-end", ack_timeout=2.0, ingest_keepalive=2,
                      ingest_session_expiry=2, id_prefix="rx")
    stack.up(sd, cfg)
    try:
        wait_until(lambda: stored_total(sd) >= 2 * DEVICES, 30, what="readings stored first")
        base = held_by_broker(sd)
        stack.kill(sd, "ingest", "STOP")
        wait_until(lambda: held_by_broker(sd) >= base + 2 * DEVICES, 20,
                   what="readings held by the broker for the frozen ingest")
        stack.kill(sd, "ingest", "KILL")  # gone; its session expires 2 s later, with the readings
        wait_until(lambda: held_by_broker(sd) <= base + 1, 30,
                   what="the broker discarding the expired session's queue")
        stack.start(sd, "ingest")
        result = settle_and_check(sd)
        log = sd.component("ingest").logfile.read_text()
    finally:
        stack.down(sd)
    assert result.totals.lost == 0, result.as_dict()["totals"]
    assert "announced a new broker session" in log
    assert result.cost.resent_by_reason.get("ingest-session-lost", 0) > 0, result.cost
