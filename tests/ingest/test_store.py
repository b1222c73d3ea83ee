"""SqliteStore: schema, idempotency, duplicates within and across batches (signed re-sends among
them), conflicts, quarantine rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ingest.errors import SchemaError, StoreError
from ingest.store import COLUMNS, MAX_QUARANTINE_RAW, BatchResult, SqliteStore
from ingest.validate import Accepted, Quarantined, validate
from tests.ingest.conftest import make_reading, payload_of
from wire import FLAG_BACKLOG, Reading, encode_reading, reading_key
from wire.reading import FLAG_LEAD_OFF

T = 1_700_000_500.0


def acc(device_id: str, seq: int, received_at: float = T, **kw: object) -> Accepted:
    v = validate(f"heartcheck/{device_id}/ecg", payload_of(device_id, seq, **kw), received_at)
    assert isinstance(v, Accepted)
    return v


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "ingest" / "ingest.sqlite")
    yield s
    s.close()


def rows(store: SqliteStore, sql: str) -> list[tuple]:
    with sqlite3.connect(store.path) as db:
        return db.execute(sql).fetchall()


def test_schema_wal_and_full_sync(store: SqliteStore) -> None:
    with sqlite3.connect(store.path) as db:
        for table, cols in COLUMNS.items():
            assert [r[1] for r in db.execute(f"PRAGMA table_info({table})")] == cols
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        pk = [r[1] for r in db.execute("PRAGMA table_info(readings)") if r[5]]
        assert pk == ["device_id", "boot_epoch", "seq"]
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_reading_is_stored_with_every_column(store: SqliteStore) -> None:
    r = make_reading("hc-0001", 5, flags=FLAG_BACKLOG)
    a = validate("heartcheck/hc-0001/ecg", encode_reading(r), T)
    assert isinstance(a, Accepted)
    res = store.store_batch([a], [], stored_at=T + 1)
    assert res == BatchResult(stored=(("hc-0001", 1, 5),), duplicates=(), quarantined=0)
    (row,) = rows(store, "SELECT * FROM readings")
    assert row[:13] == ("hc-0001", 1, 5, r.captured_at, T, T + 1, 250, 2.5, 250, 1, 0, 0, 1)
    assert np.array_equal(np.frombuffer(row[13], dtype=">i2"), r.samples)


def test_idempotent_across_batches(store: SqliteStore) -> None:
    first = store.store_batch([acc("hc-1", 0), acc("hc-1", 1)], [], T)
    again = store.store_batch([acc("hc-1", 1, T + 5), acc("hc-1", 2)], [], T + 6)
    assert first.stored_by_device() == {"hc-1": [0, 1]}
    assert again.stored_by_device() == {"hc-1": [2]}
    assert again.duplicates_by_device() == {"hc-1": [1]}
    assert again.confirmed_by_device() == {"hc-1": [1, 2]}
    assert rows(store, "SELECT COUNT(*) FROM readings") == [(3,)]
    assert rows(store, "SELECT * FROM duplicates") == [("hc-1", 1, 1, T + 5)]
    # the stored row keeps its first reception
    assert rows(store, "SELECT received_at FROM readings WHERE seq = 1") == [(T,)]


def test_duplicates_within_one_batch(store: SqliteStore) -> None:
    res = store.store_batch([acc("hc-1", 4), acc("hc-1", 4), acc("hc-1", 4), acc("hc-2", 4)], [], T)
    assert res.stored == (("hc-1", 1, 4), ("hc-2", 1, 4))
    assert res.duplicates == (("hc-1", 1, 4), ("hc-1", 1, 4))
    assert rows(store, "SELECT COUNT(*) FROM readings") == [(2,)]
    assert rows(store, "SELECT COUNT(*) FROM duplicates") == [(2,)]


def test_same_seq_other_boot_epoch_is_another_key(store: SqliteStore) -> None:
    res = store.store_batch([acc("hc-1", 4, boot_epoch=1), acc("hc-1", 4, boot_epoch=2)], [], T)
    assert len(res.stored) == 2 and not res.duplicates


def test_quarantine_rows_keep_raw_bytes(store: SqliteStore) -> None:
    raw = bytes(range(256)) * 3
    q1 = Quarantined("heartcheck/hc-1/ecg", "bad-magic", "magic b'\\x00\\x01'", raw, T)
    q2 = Quarantined("x/y", "bad-topic", "nope", b"", T + 1)
    res = store.store_batch([acc("hc-1", 0)], [q1, q2], T + 2)
    assert res.quarantined == 2 and len(res.stored) == 1
    got = rows(store, "SELECT id, received_at, topic, reason, detail, raw FROM quarantine ORDER BY id")
    assert got == [(1, T, "heartcheck/hc-1/ecg", "bad-magic", "magic b'\\x00\\x01'", raw),
                   (2, T + 1, "x/y", "bad-topic", "nope", b"")]


def test_huge_quarantined_payloads_are_cut_and_say_so(store: SqliteStore) -> None:
    raw = b"\xab" * (MAX_QUARANTINE_RAW + 10)
    store.store_batch([], [Quarantined("heartcheck/hc-1/ecg", "oversize", "big", raw, T)], T)
    ((detail, n),) = rows(store, "SELECT detail, length(raw) FROM quarantine")
    assert n == MAX_QUARANTINE_RAW
    assert f"of {len(raw)} bytes" in detail


def test_a_failed_batch_commits_nothing(store: SqliteStore) -> None:
    bad = Quarantined("heartcheck/hc-1/ecg", "bad-magic", "x", b"x", T)
    object.__setattr__(bad, "received_at", None)  # violates NOT NULL at insert time
    with pytest.raises(StoreError):
        store.store_batch([acc("hc-1", 0)], [bad], T)
    assert rows(store, "SELECT COUNT(*) FROM readings") == [(0,)]
    # and the store is still usable
    assert store.store_batch([acc("hc-1", 0)], [], T).stored == (("hc-1", 1, 0),)


def test_reopening_keeps_data_and_dedupes(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    s1 = SqliteStore(path)
    s1.store_batch([acc("hc-1", 0)], [], T)
    s1.close()
    s2 = SqliteStore(path)
    assert s2.store_batch([acc("hc-1", 0)], [], T).duplicates == (("hc-1", 1, 0),)
    s2.close()


def test_a_foreign_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE readings (device_id TEXT, seq INTEGER)")
    with pytest.raises(SchemaError, match="readings"):
        SqliteStore(path)


def test_an_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(StoreError):
        SqliteStore(tmp_path / "dir.sqlite")


def test_same_key_other_content_is_a_conflict_not_a_duplicate(store: SqliteStore) -> None:
    """A CRC-valid reading under a stored key with another capture time (or other samples, or
    another rate) is quarantined as a conflict; the first is kept, and the conflict is not
    confirmed. A genuine copy re-sent from the backlog (bit 0 set) is still a duplicate.
    (A capture time far in the future does not get this far: validate() quarantines it.)"""
    first = store.store_batch([acc("hc-0001", 5)], [], stored_at=T)
    assert first.stored == (("hc-0001", 1, 5),)
    future = acc("hc-0001", 5, captured_at=1_600_000_000.0)
    other_rate = acc("hc-0001", 5, rate=500)
    resent = acc("hc-0001", 5, flags=FLAG_BACKLOG)
    res = store.store_batch([future, other_rate, resent], [], stored_at=T + 1)
    assert res.conflicts == (("hc-0001", 1, 5), ("hc-0001", 1, 5)) and res.quarantined == 2
    assert res.duplicates == (("hc-0001", 1, 5),) and res.stored == ()
    assert res.confirmed_by_device() == {"hc-0001": [5]}  # the duplicate; it is stored
    q = rows(store, "SELECT reason, detail, raw FROM quarantine ORDER BY id")
    assert [r[0] for r in q] == ["conflict", "conflict"]
    assert "differs in: captured_at" in q[0][1] and "sample_rate_hz" in q[1][1], q
    assert q[0][2] == future.raw  # the raw bytes kept
    (kept,) = rows(store, "SELECT captured_at, sample_rate_hz FROM readings")
    assert kept == (1_700_000_005.0, 250)  # the first one


def test_a_conflict_within_one_batch_keeps_the_first(store: SqliteStore) -> None:
    res = store.store_batch([acc("hc-0002", 1), acc("hc-0002", 1, captured_at=1.0e9)], [], stored_at=T)
    assert res.stored == (("hc-0002", 1, 1),) and res.conflicts == (("hc-0002", 1, 1),)
    assert rows(store, "SELECT captured_at FROM readings") == [(1_700_000_001.0,)]


KEY = reading_key(b"\x05" * 32, "hc-0001")
KEYS = {"hc-0001": KEY}


def signed_acc(r: Reading, flags: int | None = None) -> Accepted:
    v = validate("heartcheck/hc-0001/ecg", encode_reading(r, flags, key=KEY), T, KEYS)
    assert isinstance(v, Accepted), v
    return v


def test_a_signed_resend_with_the_backlog_bit_is_a_duplicate(store: SqliteStore) -> None:
    """The re-send is signed again (the signature covers the flags), so its signature differs
    from the live copy's; the store compares what the reading says, not how it was sent."""
    r = make_reading("hc-0001", 5)
    live, resent = signed_acc(r), signed_acc(r, flags=FLAG_BACKLOG)
    assert live.fields.signature != resent.fields.signature
    assert store.store_batch([live], [], T).stored == (("hc-0001", 1, 5),)
    res = store.store_batch([resent], [], T + 1)
    assert res.duplicates == (("hc-0001", 1, 5),) and not res.conflicts and res.quarantined == 0
    # and within one batch
    again = store.store_batch([signed_acc(make_reading("hc-0001", 6)),
                               signed_acc(make_reading("hc-0001", 6), flags=FLAG_BACKLOG)], [], T + 2)
    assert again.stored == (("hc-0001", 1, 6),) and again.duplicates == (("hc-0001", 1, 6),)


def test_a_copy_stored_unsigned_and_resent_signed_is_a_duplicate(store: SqliteStore) -> None:
    """A reading stored by an insecure ingest and re-sent signed once keys are on (or the other
    way round) says the same thing: confirmed as a duplicate, not quarantined for ever."""
    r = make_reading("hc-0001", 5)
    store.store_batch([acc("hc-0001", 5)], [], T)
    res = store.store_batch([signed_acc(r, flags=FLAG_BACKLOG)], [], T + 1)
    assert res.duplicates == (("hc-0001", 1, 5),) and not res.conflicts
    store.store_batch([signed_acc(make_reading("hc-0001", 6))], [], T + 2)
    res = store.store_batch([acc("hc-0001", 6)], [], T + 3)
    assert res.duplicates == (("hc-0001", 1, 6),) and not res.conflicts


def test_same_key_other_samples_validly_signed_is_a_conflict(store: SqliteStore) -> None:
    """A valid signature says who made a reading, not that it is the one stored: the device's
    key with other samples (or another capture time) under a stored key is still a conflict."""
    r = make_reading("hc-0001", 5)
    store.store_batch([signed_acc(r)], [], T)
    samples = r.samples.copy()
    samples[100] += 1
    other_samples = signed_acc(replace(r, samples=samples), flags=FLAG_BACKLOG)
    other_time = signed_acc(replace(r, captured_at=r.captured_at + 0.5))
    other_lead = signed_acc(replace(r, flags=FLAG_LEAD_OFF))
    res = store.store_batch([other_samples, other_time, other_lead], [], T + 1)
    assert res.conflicts == (("hc-0001", 1, 5),) * 3 and not res.duplicates and not res.stored
    details = [d for (d,) in rows(store, "SELECT detail FROM quarantine ORDER BY id")]
    assert "differs in: samples)" in details[0] and "differs in: captured_at)" in details[1]
    assert "differs in: flags)" in details[2]
    (kept,) = rows(store, "SELECT samples FROM readings")
    assert kept == (r.samples.astype(">i2").tobytes(),)
