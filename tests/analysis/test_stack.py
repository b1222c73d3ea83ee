"""The analysis as a stack component: `ecgpipe up` starts it after ingest, it analyses what
ingest stores, a kill -9 and a start lose and duplicate nothing, `down` stops it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import store_view
from lab.stack import control
from lab.stack.procs import EXITED, RUNNING
from lab.stack.statedir import StateDir
from tests.conftest import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]
ECGPIPE = [sys.executable, "-m", "lab.cli"]


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*ECGPIPE, *args, "--state-dir", str(state)], capture_output=True, text=True,
                         timeout=180, env={**os.environ, "ECGPIPE_STATE_DIR": ""}, check=False)
    assert res.returncode == 0, f"ecgpipe {' '.join(args)} failed: {res.stderr}{res.stdout}"
    return res


def analysed_once(sd: StateDir) -> None:
    """Every stored reading up to the cursor has exactly one segment, and the counter agrees."""
    prog = store_view.progress(sd.analysis_db)
    with sqlite3.connect(f"file:{sd.ingest_db}?mode=ro", uri=True) as ing:
        upto = ing.execute("SELECT COUNT(*) FROM readings WHERE rowid <= ?", (prog["cursor"],)).fetchone()[0]
    with sqlite3.connect(f"file:{sd.analysis_db}?mode=ro", uri=True) as db:
        segments = db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
        close_beats = db.execute("SELECT COUNT(*) FROM beats a JOIN beats b ON a.device_id = b.device_id"
                                 " AND b.t > a.t AND b.t < a.t + 0.2").fetchone()[0]
    assert prog["analysed"] == segments == upto and close_beats == 0


def test_up_kill_9_start_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sd = StateDir(state)
    cli(state, "up", "--devices", "2", "--no-proxy")
    try:
        status = json.loads(cli(state, "status", "--json").stdout)
        assert status["analysis"]["state"] == RUNNING
        assert "analysis" in cli(state, "status").stdout
        wait_until(lambda: store_view.progress(sd.analysis_db)["analysed"] >= 6, 60,
                   what="the analysis to analyse the devices' first readings")
        first_pid = control.kill(sd, "analysis")
        assert sd.component("analysis").state() == EXITED
        before = store_view.progress(sd.analysis_db)["analysed"]
        analysed_once(sd)
        assert control.start(sd, "analysis") != first_pid
        wait_until(lambda: store_view.progress(sd.analysis_db)["analysed"] >= before + 6, 60,
                   what="the restarted analysis to carry on")
        analysed_once(sd)
        assert store_view.progress(sd.analysis_db)["devices"] == 2
    finally:
        down = cli(state, "down")
    assert "analysis" in down.stdout and sd.component("analysis").state() == EXITED
    analysed_once(sd)
