"""A stack that stores in PostgreSQL (`up --store postgres`) with two ingest workers, through
the CLI: the server is a component of the stack, a kill -9 of it loses nothing (ingest holds
its batch and retries; the analysis waits), and `down` leaves a state dir readable without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.stack import postgres as pg
from lab.stack.levels import Stable, generated_total, stored_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.lab.test_cli import cj, cli
from tests.lab.test_cli_faults import one_line

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_postgres_store_survives_a_kill_and_down_leaves_a_readable_state_dir(tmp_path: Path) -> None:
    s = tmp_path / "stack"
    sd = StateDir(s)
    cli(s, "up", "--devices", "4", "--store", "postgres", "--ingest-workers", "2", "--ack-timeout", "2")
    try:
        st = cj(s, "status")
        assert st["components"][-1] == "postgres" and st["postgres"]["state"] == "running"
        assert (s / "ingest" / "store.json").exists() and not sd.ingest_db.exists()
        wait_until(lambda: stored_total(sd) >= 20, 60, what="readings stored in PostgreSQL")

        assert one_line(cli(s, "kill", "postgres").stdout).startswith("sent SIGKILL to postgres")
        g = generated_total(sd)
        wait_until(lambda: generated_total(sd) >= g + 8, 30, what="readings made while the store is down")
        down_report = cli(s, "report", check=False)
        assert down_report.returncode == 1 and "does not answer" in one_line(down_report.stderr)
        st = cj(s, "status")
        assert st["ingest"]["workers"] == {"ingest-1": "running", "ingest-2": "running"}
        assert st["analysis"]["state"] == "running"

        cli(s, "start", "postgres")
        n = stored_total(sd)
        wait_until(lambda: stored_total(sd) >= n + 8, 60, what="the held batches stored once it is back")
        logs = cli(s, "logs", "ingest", "-n", "1000").stdout
        assert "store unavailable" in logs and "holding the batch" in logs
        cli(s, "kill", "devices", "--signal", "TERM")
        wait_until(Stable(sd), 60, what="ingest quiet once the fleet stopped")
        assert cj(s, "status")["analysis"]["state"] == "running"
    finally:
        out = cli(s, "down").stdout
        root = pg.cluster_root(sd)
    try:
        assert "store copied to" in out and sd.ingest_db.exists()
        t = cj(s, "report")["totals"]  # from the copy: the server is down
        assert t["lost"] == 0 and t["evicted"] == 0, t
        assert t["generated"] == t["stored"] + t["buffered"] and t["stored"] >= 30, t
    finally:
        pg.remove_cluster(sd)
    assert not root.exists()
