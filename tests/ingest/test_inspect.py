"""The read-only inspection functions the lab calls."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ingest import store_view as inspect
from ingest.errors import StoreError
from ingest.store import SqliteStore
from ingest.validate import Accepted, Quarantined, validate
from tests.ingest.conftest import make_reading, payload_of
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
    window = inspect.latencies(db, captured_between=(T0 + 2, T0 + 6))  # seqs 2, 3, 4, 5
    assert sorted(window.tolist()) == [15.0, 16.0, 17.0, 18.0]


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
    before = path.stat().st_mtime_ns
    assert inspect.stored_seqs(path) == {"hc-1": {0}}
    s.store_batch([acc("hc-1", 1)], [], T0)  # the writer is still open: WAL not checkpointed
    assert inspect.stored_seqs(path) == {"hc-1": {0, 1}}
    assert inspect.totals(path)["stored"] == 2
    s.close()
    assert path.stat().st_mtime_ns >= before
    with pytest.raises(StoreError, match="readonly") as info, inspect._snapshot(path) as q:
        q("INSERT INTO duplicates VALUES ('x', 0, 0, 0)")
    # StoreError <- ecgcore's SnapshotError <- SQLite's own refusal
    assert info.value.__cause__ is not None
    assert isinstance(info.value.__cause__.__cause__, sqlite3.OperationalError)


def test_a_file_that_is_not_a_store_is_a_store_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="not a readable database"):
        inspect.stored_seqs(junk)
    with pytest.raises(StoreError):
        inspect.stored_readings(junk)


# --- the lab's read API: stored_readings, duplicate_readings, quarantine_events, reading_samples


def test_stored_readings_in_store_order(db: Path) -> None:
    rows = inspect.stored_readings(db)
    assert [(r.device_id, r.seq) for r in rows] == [
        ("hc-1", 0), ("hc-1", 1), ("hc-1", 2), ("hc-1", 5), ("hc-1", 6), ("hc-1", 9),
        ("hc-2", 3), ("hc-2", 4)]  # one batch: insertion order
    first = rows[0]
    assert first == inspect.StoredRow(device_id="hc-1", boot_epoch=1, seq=0, captured_at=T0,
                                      received_at=T0, stored_at=T0 + 20, n_samples=250,
                                      sample_rate_hz=250, backlog=False)
    assert first.duration_s == 1.0
    assert [r.backlog for r in rows] == [False] * 6 + [True] * 2
    assert all(type(r.seq) is int and type(r.captured_at) is float and type(r.backlog) is bool
               for r in rows)
    with pytest.raises(AttributeError):
        first.seq = 7  # type: ignore[misc]  # frozen


def test_stored_readings_order_by_stored_at_then_insertion(tmp_path: Path) -> None:
    path = tmp_path / "order.sqlite"
    s = SqliteStore(path)
    s.store_batch([acc("hc-1", 3), acc("hc-1", 1)], [], stored_at=T0 + 50)
    s.store_batch([acc("hc-2", 0)], [], stored_at=T0 + 40)  # committed later, stamped earlier
    s.store_batch([acc("hc-1", 2)], [], stored_at=T0 + 50)
    s.close()
    assert [(r.device_id, r.seq, r.stored_at) for r in inspect.stored_readings(path)] == [
        ("hc-2", 0, T0 + 40), ("hc-1", 3, T0 + 50), ("hc-1", 1, T0 + 50), ("hc-1", 2, T0 + 50)]


def test_duplicate_readings_by_received_at_then_insertion(db: Path, tmp_path: Path) -> None:
    assert inspect.duplicate_readings(db) == [("hc-1", 1, 5, T0 + 5), ("hc-1", 1, 5, T0 + 5)]
    path = tmp_path / "dups.sqlite"
    s = SqliteStore(path)
    s.store_batch([acc("hc-1", 7), acc("hc-1", 3)], [], stored_at=T0)
    s.store_batch([acc("hc-1", 7), acc("hc-1", 3)], [], stored_at=T0 + 1)
    s.close()
    dups = inspect.duplicate_readings(path)
    assert [(d.seq, d.received_at) for d in dups] == [(3, T0 + 3), (7, T0 + 7)]
    assert dups[0].device_id == "hc-1" and dups[0].boot_epoch == 1


def test_quarantine_events_in_arrival_order(db: Path) -> None:
    events = inspect.quarantine_events(db)
    assert events == [(T0, "heartcheck/hc-1/ecg", "bad-checksum"),
                      (T0, "heartcheck/hc-3/ecg", "truncated"),
                      (T0, "junk topic", "bad-topic")]
    assert [e.device_id for e in events] == ["hc-1", "hc-3", None]
    assert events[2].reason == "bad-topic" and events[2].received_at == T0


def test_store_contents_is_the_three_from_one_snapshot(db: Path) -> None:
    contents = inspect.store_contents(db)
    assert contents.stored == inspect.stored_readings(db)
    assert contents.duplicates == inspect.duplicate_readings(db)
    assert contents.quarantined == inspect.quarantine_events(db)


def test_reading_samples(db: Path) -> None:
    got = inspect.reading_samples(db, "hc-1", 1, 5)
    assert got is not None
    want = make_reading("hc-1", 5)
    assert got.samples.dtype == np.int16 and np.array_equal(got.samples, want.samples)
    assert (got.gain_uv, got.sample_rate_hz) == (2.5, 250)
    assert np.allclose(got.millivolts(), want.samples.astype(float) * 2.5 / 1000.0)
    assert inspect.reading_samples(db, "hc-1", 1, 3) is None  # a gap
    assert inspect.reading_samples(db, "hc-1", 2, 5) is None  # another boot


def test_the_lab_api_on_a_missing_or_empty_store(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    for path in (missing, empty):
        assert inspect.stored_readings(path) == []
        assert inspect.duplicate_readings(path) == []
        assert inspect.quarantine_events(path) == []
        assert inspect.store_contents(path) == ([], [], [], {})
        assert inspect.reading_samples(path, "hc-1", 1, 0) is None
    assert not missing.exists()
