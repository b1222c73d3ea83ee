"""The store keeps the wire's flag bits (the lead-off flag among them), and a store made before
the `flags` column existed gets it when ingest opens it, its readings reading as flags 0."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest.store import SqliteStore
from ingest.store_feed import readings_after
from ingest.validate import Accepted, validate
from tests.ingest.conftest import payload_of

LEAD_OFF = 0x04


def accepted(seq: int, flags: int) -> Accepted:
    got = validate("heartcheck/hc-0001/ecg", payload_of("hc-0001", seq, flags=flags), 1_700_000_100.0)
    assert isinstance(got, Accepted), got
    return got


def test_the_flags_are_stored_and_fed_to_the_analysis(tmp_path: Path) -> None:
    db = tmp_path / "ingest.sqlite"
    store = SqliteStore(db)
    store.store_batch([accepted(0, 0), accepted(1, LEAD_OFF)], [], stored_at=1_700_000_101.0)
    store.close()
    got = {r.seq: r.flags for r in readings_after(db, 0, 10)}
    assert got == {0: 0, 1: LEAD_OFF}


def test_a_store_from_before_the_flags_column_is_migrated_on_open(tmp_path: Path) -> None:
    db = tmp_path / "ingest.sqlite"
    old = sqlite3.connect(db)
    old.executescript(
        "CREATE TABLE readings (device_id TEXT NOT NULL, boot_epoch INTEGER NOT NULL,"
        " seq INTEGER NOT NULL, captured_at REAL NOT NULL, received_at REAL NOT NULL,"
        " stored_at REAL NOT NULL, sample_rate_hz INTEGER NOT NULL, gain_uv REAL NOT NULL,"
        " n_samples INTEGER NOT NULL, backlog INTEGER NOT NULL, strip_id INTEGER NOT NULL,"
        " chunk INTEGER NOT NULL, chunks INTEGER NOT NULL, samples BLOB NOT NULL,"
        " PRIMARY KEY (device_id, boot_epoch, seq));"
        "INSERT INTO readings VALUES ('hc-0001', 1, 0, 1.0, 2.0, 3.0, 250, 2.5, 1, 0, 0, 0, 1, x'0000');")
    old.commit()
    old.close()
    store = SqliteStore(db)
    store.store_batch([accepted(1, LEAD_OFF)], [], stored_at=1_700_000_101.0)
    store.close()
    got = {r.seq: r.flags for r in readings_after(db, 0, 10)}
    assert got == {0: 0, 1: LEAD_OFF}
