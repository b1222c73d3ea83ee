"""`python -m analysis` as a process on an ingest.sqlite written by the real ingest store:
kill -9 mid-way and restart gives exactly the events of an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import store_view
from ingest.store import SqliteStore
from ingest.store_feed import last_rowid
from tests.analysis.conftest import Record
from tests.analysis.synth import chunk, render, rhythm, store_readings
from tests.conftest import wait_until


def start(state: Path) -> subprocess.Popen[bytes]:
    with (state / "analysis.log").open("ab") as log:  # the child keeps its own copy of the fd
        return subprocess.Popen([sys.executable, "-m", "analysis", "--state-dir", str(state),
                                 "--poll", "0.05", "--max-batch", "40"], stdout=log, stderr=subprocess.STDOUT)


def run_to_end(state: Path, proc: subprocess.Popen[bytes] | None = None) -> None:
    proc = proc or start(state)
    top = last_rowid(state / "ingest" / "ingest.sqlite")
    try:
        wait_until(lambda: store_view.progress(state / "analysis" / "analysis.sqlite")["cursor"] == top,
                   120, what="the analysis to reach the end of the store")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def rows(state: Path) -> list[tuple[object, ...]]:
    """Every event row but the analysis clock's columns (raised_at, updated_at), which differ
    between two runs by how long each took."""
    with sqlite3.connect(state / "analysis" / "analysis.sqlite") as db:
        return db.execute("SELECT id, device_id, kind, onset, last_seen, open, evidence FROM events"
                          " ORDER BY id").fetchall()


@pytest.fixture
def prepared(tmp_path: Path, record: Record) -> Path:
    """A state dir whose ingest store holds two devices' records, interleaved in batches."""
    state = tmp_path / "a"
    second, _ = rhythm(np.random.default_rng(9), [("sinus", 30, 80), ("af", 80, 95), ("sinus", 30, 80)])
    other = chunk("hc-0002", render(second, float(second[-1]) + 1.0, seed=1))
    mixed = [r for pair in zip(record.readings, other, strict=False) for r in pair]
    mixed += record.readings[len(other):]
    store = SqliteStore(state / "ingest" / "ingest.sqlite")
    try:
        store_readings(store, mixed, batch=25)
    finally:
        store.close()
    return state


def test_kill_9_mid_way_then_restart_gives_the_events_of_an_uninterrupted_run(
        prepared: Path, tmp_path: Path) -> None:
    clean = tmp_path / "b"
    shutil.copytree(prepared, clean)
    run_to_end(clean)
    expected = rows(clean)
    kinds = sorted({r[2] for r in expected})
    assert {"brady", "tachy", "pause", "af"} <= set(kinds), kinds

    db = prepared / "analysis" / "analysis.sqlite"
    total = last_rowid(prepared / "ingest" / "ingest.sqlite")
    for fraction in (0.3, 0.6):  # twice: mid-way, and mid-way through the rest
        proc = start(prepared)
        wait_until(lambda f=fraction: store_view.progress(db)["analysed"] >= f * total, 120,
                   interval=0.01, what=f"{fraction:.0%} analysed")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert store_view.progress(db)["cursor"] < total  # killed before the end
    run_to_end(prepared)
    assert rows(prepared) == expected
    prog = store_view.progress(db)
    with sqlite3.connect(db) as con:
        segments = con.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
    assert prog["analysed"] == segments == total  # every reading analysed once, none counted twice


def test_the_process_says_ready_and_stops_cleanly_on_an_empty_state_dir(tmp_path: Path) -> None:
    proc = start(tmp_path)
    try:
        wait_until((tmp_path / "analysis" / "ready.json").exists, 60, what="ready.json")
        assert store_view.progress(tmp_path / "analysis" / "analysis.sqlite")["analysed"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_bad_arguments_exit_2_with_one_line() -> None:
    res = subprocess.run([sys.executable, "-m", "analysis", "--state-dir", "x", "--poll", "0"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "poll" in res.stderr
