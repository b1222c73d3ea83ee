"""A secure stack with three ingest workers (`up --ingest-workers 3`), through the CLI: every
worker runs, status shows each, one worker's kill -9 leaves the others storing, `ingest`
names them all, and end to end nothing is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ingest import store_view
from lab.stack.levels import Stable, stored_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.lab.test_cli import cj, cli
from tests.lab.test_cli_faults import one_line

pytestmark = [pytest.mark.broker, pytest.mark.slow]

WORKERS = ("ingest-1", "ingest-2", "ingest-3")


def test_three_workers_share_the_readings_and_one_crash_loses_nothing(tmp_path: Path) -> None:
    s = tmp_path / "stack"
    sd = StateDir(s)
    cli(s, "up", "--devices", "6", "--ingest-workers", "3", "--ack-timeout", "2")
    try:
        st = cj(s, "status")
        assert st["components"][1:4] == list(WORKERS)
        assert all(st[w]["state"] == "running" and isinstance(st[w]["pid"], int) for w in WORKERS)
        assert st["ingest"]["state"] == "running"
        assert st["ingest"]["workers"] == dict.fromkeys(WORKERS, "running")
        text = cli(s, "status").stdout
        assert all(w in text for w in WORKERS)
        wait_until(lambda: stored_total(sd) >= 30, 60, what="readings stored by the workers")

        line = one_line(cli(s, "kill", "ingest-2").stdout)
        assert line.startswith("sent SIGKILL to ingest-2") and line.endswith("now exited")
        st = cj(s, "status")
        assert st["ingest-2"]["state"] == "exited" and st["ingest-1"]["state"] == "running"
        assert st["ingest"]["state"] == "running" and st["ingest"]["reason"] == "2 of 3 workers running"
        n = stored_total(sd)
        wait_until(lambda: stored_total(sd) >= n + 30, 60, what="the two live workers still storing")

        bad = cli(s, "kill", "ingest-4", check=False)
        assert bad.returncode == 1 and "no ingest-4" in one_line(bad.stderr)
        bad = cli(s, "kill", "postgres", check=False)  # a SQLite stack
        assert bad.returncode == 1 and "has no postgres: its store is SQLite" in one_line(bad.stderr)
        cli(s, "start", "ingest")  # starts only the worker that is not running
        assert cj(s, "status")["ingest"]["workers"] == dict.fromkeys(WORKERS, "running")
        logs = cli(s, "logs", "ingest", "-n", "500").stdout
        assert all(f" {w} " in logs for w in WORKERS)
        cli(s, "kill", "devices", "--signal", "TERM")
        wait_until(Stable(sd), 60, what="every worker quiet once the fleet stopped")
    finally:
        cli(s, "down")
    t = cj(s, "report")["totals"]
    # end to end: what is not stored is still in an outbox (the fleet stopped mid-flight)
    assert t["lost"] == 0 and t["evicted"] == 0, t
    assert t["generated"] == t["stored"] + t["buffered"] and t["stored"] > 60, t
    # each reading stored once, by whichever worker got it first
    seqs = store_view.stored_seqs(sd.ingest_db)
    assert sum(len(v) for v in seqs.values()) == t["stored"]


def test_a_scenario_fault_on_a_worker_the_variant_does_not_run_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "w.toml"
    bad.write_text('description = "x"\nduration = "10m"\nexpect = ["lost = 0"]\n\n[fleet]\ndevices = 3\n\n'
                   '[broker]\ningest_workers = 2\n\n'
                   '[[faults]]\nid = "k"\nkind = "kill"\ntarget = "ingest-3"\nstart = "1m"\nend = "2m"\n')
    res = subprocess.run([sys.executable, "-m", "lab.cli", "scenario", "run", str(bad), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode != 0
    line = one_line(res.stderr)
    assert "ingest-3" in line and "ingest_workers" in line, line
