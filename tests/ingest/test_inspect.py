"""The read-only inspection functions the lab calls."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ingest import store_view as inspect
from ingest.store import SqliteStore
from ingest.validate import Accepted, Quarantined, validate
from tests.ingest.conftest import payload_of
from wire import FLAG_BACKLOG

T0 = 1_700_000_000.0


def acc(device_id: str, seq: int, **kw: object) -> Accepted:
    v = validate(f"heartcheck/{device_id}/ecg", payload_of(device_id, seq, **kw), T0 + seq)
    assert isinstance(v, Accepted)
    return v


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ingest.sqlite"
    s = SqliteStore(path)
    s.store_batch(
        [acc("hc-1", i) for i in (0, 1, 2, 5, 6, 9)]
        + [acc("hc-2", 3, flags=FLAG_BACKLOG), acc("hc-2", 4, flags=FLAG_BACKLOG)],
        [Quarantined("heartcheck/hc-1/ecg", "bad-checksum", "crc", b"\x01\x02\x03", T0),
         Quarantined("heartcheck/hc-3/ecg", "truncated", "short", b"HC", T0),
         Quarantined("junk topic", "bad-topic", "topic", b"zz" * 40, T0)],
        stored_at=T0 + 20,
    )
    s.store_batch([acc("hc-1", 5), acc("hc-1", 5)], [], stored_at=T0 + 21)
    s.close()
    return path


def test_stored_seqs(db: Path) -> None:
    assert inspect.stored_seqs(db) == {"hc-1": {0, 1, 2, 5, 6, 9}, "hc-2": {3, 4}}


def test_device_stats(db: Path) -> None:
    st = inspect.device_stats(db)
    assert st["hc-1"] == {"stored": 6, "duplicates": 2, "quarantined": 1,
                          "missing_ranges": [[3, 4], [7, 8]], "first_seq": 0, "last_seq": 9,
                          "backlog_stored": 0}
    assert st["hc-2"]["missing_ranges"] == [[0, 2]]
    assert st["hc-2"]["backlog_stored"] == 2
    assert st["hc-3"] == {"stored": 0, "duplicates": 0, "quarantined": 1, "missing_ranges": [],
                          "first_seq": None, "last_seq": None, "backlog_stored": 0}


def test_device_stats_with_generated_counts(db: Path) -> None:
    st = inspect.device_stats(db, generated={"hc-1": 12, "hc-2": 5, "hc-9": 3})
    assert st["hc-1"]["missing_ranges"] == [[3, 4], [7, 8], [10, 11]]
    assert st["hc-2"]["missing_ranges"] == [[0, 2]]
    assert st["hc-9"]["missing_ranges"] == [[0, 2]] and st["hc-9"]["stored"] == 0


def test_quarantine_rows_and_counts(db: Path) -> None:
    rows = inspect.quarantine_rows(db, limit=2, raw_prefix=4)
    assert [r["reason"] for r in rows] == ["bad-topic", "truncated"]  # newest first
    assert rows[0]["raw_hex"] == "7a7a7a7a" and rows[0]["size"] == 80
    assert rows[1] == {"id": 2, "received_at": T0, "topic": "heartcheck/hc-3/ecg",
                       "reason": "truncated", "detail": "short", "raw_hex": "4843", "size": 2}
    assert inspect.quarantine_counts(db) == {"bad-checksum": 1, "bad-topic": 1, "truncated": 1}


def test_latencies(db: Path) -> None:
    lat = inspect.latencies(db)
    assert lat.shape == (8,)
    # captured_at = T0 + seq (make_reading), stored_at = T0 + 20
    assert sorted(lat.tolist()) == sorted(20.0 - s for s in (0, 1, 2, 5, 6, 9, 3, 4))
    end = inspect.latencies(db, from_end_of_chunk=True)
    assert np.allclose(np.sort(lat) - 1.0, np.sort(end))  # 250 samples at 250 Hz


def test_totals(db: Path) -> None:
    assert inspect.totals(db) == {"stored": 8, "duplicates": 2, "quarantined": 3, "devices": 2,
                                  "backlog_stored": 2, "first_stored_at": T0 + 20,
                                  "last_stored_at": T0 + 20}


def test_missing_file_gives_empty_results(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    assert inspect.stored_seqs(missing) == {}
    assert inspect.device_stats(missing) == {}
    assert inspect.device_stats(missing, generated={"hc-1": 2})["hc-1"]["missing_ranges"] == [[0, 1]]
    assert inspect.quarantine_rows(missing) == []
    assert inspect.quarantine_counts(missing) == {}
    assert inspect.latencies(missing).size == 0
    assert inspect.totals(missing)["stored"] == 0
    assert not missing.exists()


def test_empty_file_without_tables(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    assert inspect.stored_seqs(empty) == {}
    assert inspect.totals(empty)["quarantined"] == 0


def test_reads_are_read_only_and_see_commits_of_a_live_writer(tmp_path: Path) -> None:
    path = tmp_path / "live.sqlite"
    s = SqliteStore(path)
    s.store_batch([acc("hc-1", 0)], [], T0)
    before = os.stat(path).st_mtime_ns
    assert inspect.stored_seqs(path) == {"hc-1": {0}}
    s.store_batch([acc("hc-1", 1)], [], T0)  # the writer is still open: WAL not checkpointed
    assert inspect.stored_seqs(path) == {"hc-1": {0, 1}}
    assert inspect.totals(path)["stored"] == 2
    s.close()
    assert os.stat(path).st_mtime_ns >= before
    with pytest.raises(sqlite3.OperationalError, match="readonly"), inspect._snapshot(path) as q:
        q("INSERT INTO duplicates VALUES ('x', 0, 0, 0)")
