"""A flood from one device's login (issue 12): ingest's per-device rate limit refuses it once
its burst is spent, before decoding it; the other devices are not refused and lose nothing; what
was refused is counted per device, and the quarantine does not grow with the flood."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest import store_view
from lab.stack.levels import Stable, stored_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.lab.test_cli import cj, cli

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BURST = 5000  # max(5000, the outbox capacity): what `up` gives ingest's --rate-burst


def test_a_flood_from_one_login_is_refused_and_the_others_are_not(tmp_path: Path) -> None:
    s = tmp_path / "flood"
    sd = StateDir(s)
    cli(s, "up", "--devices", "4", "--delivery", "end-to-end", "--no-proxy", "--rate-limit", "5")
    try:
        wait_until(lambda: stored_total(sd) >= 8, 30, what="genuine readings stored")
        flood = json.loads(cli(s, "attack", "garbage", "--as", "hc-0000", "--count", str(BURST + 2000),
                               "--rate", "100000", "--json").stdout)
        assert flood["sent"] == BURST + 2000 and flood["pubacks"] == {"Success": BURST + 2000}, flood
        wait_until(lambda: sum(store_view.refused_counts(sd.ingest_db).values()) > 0, 30,
                   what="the flood refused")
        after = stored_total(sd)
        wait_until(lambda: stored_total(sd) >= after + 6, 30, what="the other devices still stored")
        cli(s, "kill", "devices", "--signal", "TERM")
        wait_until(Stable(sd), 30, what="ingest quiet")
    finally:
        cli(s, "down", check=False)
    refused = store_view.refused_counts(sd.ingest_db)
    assert set(refused) == {"hc-0000"}, refused  # nobody else was refused
    quarantined = store_view.quarantine_counts(sd.ingest_db)
    assert quarantined["rate-limited"] == refused["hc-0000"] >= 1500, quarantined
    flooder = store_view.device_stats(sd.ingest_db)["hc-0000"]["quarantined"]  # kept + refused
    # every message is accounted for (and maybe a genuine reading of hc-0000 itself, whose bucket
    # the thief emptied: refused, never confirmed, so sent again; lost = 0 below)...
    assert BURST + 2000 <= flooder <= BURST + 2010, (flooder, quarantined)
    assert flooder - refused["hc-0000"] <= BURST + 500  # ...the store kept the burst and a trickle
    rep = cj(s, "report")
    assert rep["totals"]["lost"] == 0, rep["totals"]
    stats = store_view.device_stats(sd.ingest_db)
    others = {d: st["quarantined"] for d, st in stats.items() if d != "hc-0000"}
    assert not any(others.values()), (others, quarantined)  # nothing of theirs refused or quarantined
    assert rep["quarantined"]["by_reason"]["rate-limited"] == refused["hc-0000"]
    assert "rate-limited" in cli(s, "inspect", "ingest").stdout
