"""PgStore against SqliteStore's contract (the behaviours of test_store.py, run on both stores),
and what only PostgreSQL has: its schema, the DSN's errors, two concurrent writers racing on
the same keys, and ids that become visible in commit order (the feed's cursor)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ingest.errors import SchemaError, StoreError
from ingest.pg_store import BATCH_LOCK, PgStore
from ingest.store import MAX_QUARANTINE_RAW, SqliteStore
from ingest.store_common import COLUMNS, BatchResult, Key, Store
from ingest.validate import Accepted, Quarantined, validate
from tests.conftest import wait_until
from tests.ingest.conftest import make_reading, payload_of
from wire import FLAG_BACKLOG, encode_reading

pytest_plugins = ["tests.ingest.pg_fixtures"]  # pg_server, pg_dsn

T = 1_700_000_500.0


def acc(device_id: str, seq: int, received_at: float = T, **kw: object) -> Accepted:
    v = validate(f"heartcheck/{device_id}/ecg", payload_of(device_id, seq, **kw), received_at)
    assert isinstance(v, Accepted)
    return v


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "ingest.sqlite")
    else:
        s = PgStore(request.getfixturevalue("pg_dsn"))
    yield s
    s.close()


def pg_rows(dsn: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query.encode()).fetchall()


def rows(store: Store, query: str) -> list[tuple[object, ...]]:
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            return db.execute(query).fetchall()
    assert isinstance(store, PgStore)
    return pg_rows(store.dsn, query)


# --- SqliteStore's behaviours, on both -------------------------------------------------------


def test_a_reading_is_stored_with_every_column(store: Store) -> None:
    r = make_reading("hc-0001", 5, flags=FLAG_BACKLOG)
    a = validate("heartcheck/hc-0001/ecg", encode_reading(r), T)
    assert isinstance(a, Accepted)
    res = store.store_batch([a], [], stored_at=T + 1)
    assert res == BatchResult(stored=(("hc-0001", 1, 5),), duplicates=(), quarantined=0)
    (row,) = rows(store, f"SELECT {', '.join(COLUMNS['readings'])} FROM readings")  # noqa: S608 -- constant names
    assert row == ("hc-0001", 1, 5, r.captured_at, T, T + 1, 250, 2.5, 250, 1, 0, 0, 1,
                   r.samples.astype(">i2").tobytes(), FLAG_BACKLOG)
    assert [type(v) for v in row] == [str, int, int, float, float, float, int, float, int, int,
                                      int, int, int, bytes, int]


def test_idempotent_across_batches(store: Store) -> None:
    first = store.store_batch([acc("hc-1", 0), acc("hc-1", 1)], [], T)
    again = store.store_batch([acc("hc-1", 1, T + 5), acc("hc-1", 2)], [], T + 6)
    assert first.stored_by_device() == {"hc-1": [0, 1]}
    assert again.stored_by_device() == {"hc-1": [2]}
    assert again.duplicates_by_device() == {"hc-1": [1]}
    assert rows(store, "SELECT COUNT(*) FROM readings") == [(3,)]
    assert rows(store, "SELECT device_id, boot_epoch, seq, received_at FROM duplicates") == [
        ("hc-1", 1, 1, T + 5)]
    assert rows(store, "SELECT received_at FROM readings WHERE seq = 1") == [(T,)]


def test_duplicates_within_one_batch(store: Store) -> None:
    res = store.store_batch([acc("hc-1", 4), acc("hc-1", 4), acc("hc-1", 4), acc("hc-2", 4)], [], T)
    assert res.stored == (("hc-1", 1, 4), ("hc-2", 1, 4))
    assert res.duplicates == (("hc-1", 1, 4), ("hc-1", 1, 4))
    assert rows(store, "SELECT COUNT(*) FROM readings") == [(2,)]
    assert rows(store, "SELECT COUNT(*) FROM duplicates") == [(2,)]


def test_same_seq_other_boot_epoch_is_another_key(store: Store) -> None:
    res = store.store_batch([acc("hc-1", 4, boot_epoch=1), acc("hc-1", 4, boot_epoch=2)], [], T)
    assert len(res.stored) == 2 and not res.duplicates


def test_quarantine_rows_keep_raw_bytes(store: Store) -> None:
    raw = bytes(range(256)) * 3
    q1 = Quarantined("heartcheck/hc-1/ecg", "bad-magic", "magic b'\\x00\\x01'", raw, T)
    q2 = Quarantined("x/y", "bad-topic", "nope", b"", T + 1)
    res = store.store_batch([acc("hc-1", 0)], [q1, q2], T + 2)
    assert res.quarantined == 2 and len(res.stored) == 1
    got = rows(store, "SELECT id, received_at, topic, reason, detail, raw FROM quarantine ORDER BY id")
    assert got == [(1, T, "heartcheck/hc-1/ecg", "bad-magic", "magic b'\\x00\\x01'", raw),
                   (2, T + 1, "x/y", "bad-topic", "nope", b"")]


def test_huge_quarantined_payloads_are_cut_and_say_so(store: Store) -> None:
    raw = b"\xab" * (MAX_QUARANTINE_RAW + 10)
    store.store_batch([], [Quarantined("heartcheck/hc-1/ecg", "oversize", "big", raw, T)], T)
    ((detail, n),) = rows(store, "SELECT detail, length(raw) FROM quarantine")
    assert n == MAX_QUARANTINE_RAW
    assert f"of {len(raw)} bytes" in str(detail)


def test_a_failed_batch_commits_nothing(store: Store) -> None:
    bad = Quarantined("heartcheck/hc-1/ecg", "bad-magic", "x", b"x", T)
    object.__setattr__(bad, "received_at", None)  # violates NOT NULL at insert time
    with pytest.raises(StoreError):
        store.store_batch([acc("hc-1", 0)], [bad], T, refused={"hc-9": 3})
    assert rows(store, "SELECT COUNT(*) FROM readings") == [(0,)]
    assert rows(store, "SELECT COUNT(*) FROM refused") == [(0,)]
    assert store.store_batch([acc("hc-1", 0)], [], T).stored == (("hc-1", 1, 0),)


def test_same_key_other_content_is_a_conflict_not_a_duplicate(store: Store) -> None:
    assert store.store_batch([acc("hc-0001", 5)], [], stored_at=T).stored == (("hc-0001", 1, 5),)
    future = acc("hc-0001", 5, captured_at=1_600_000_000.0)
    other_rate = acc("hc-0001", 5, rate=500)
    resent = acc("hc-0001", 5, flags=FLAG_BACKLOG)
    res = store.store_batch([future, other_rate, resent], [], stored_at=T + 1)
    assert res.conflicts == (("hc-0001", 1, 5), ("hc-0001", 1, 5)) and res.quarantined == 2
    assert res.duplicates == (("hc-0001", 1, 5),) and res.stored == ()
    assert res.confirmed_by_device() == {"hc-0001": [5]}
    q = rows(store, "SELECT reason, detail, raw FROM quarantine ORDER BY id")
    assert [r[0] for r in q] == ["conflict", "conflict"]
    assert "differs in: captured_at" in str(q[0][1]) and "sample_rate_hz" in str(q[1][1])
    assert q[0][2] == future.raw
    assert rows(store, "SELECT captured_at, sample_rate_hz FROM readings") == [(1_700_000_005.0, 250)]


def test_a_conflict_within_one_batch_keeps_the_first(store: Store) -> None:
    res = store.store_batch([acc("hc-0002", 1), acc("hc-0002", 1, captured_at=1.0e9)], [], stored_at=T)
    assert res.stored == (("hc-0002", 1, 1),) and res.conflicts == (("hc-0002", 1, 1),)
    assert rows(store, "SELECT captured_at FROM readings") == [(1_700_000_001.0,)]


def test_refused_counts_add_up_per_device(store: Store) -> None:
    store.store_batch([], [], T, refused={"hc-1": 3, "hc-2": 1})
    store.store_batch([acc("hc-1", 0)], [], T + 5, refused={"hc-1": 2})
    assert sorted(rows(store, "SELECT device_id, reason, count, first_at, last_at FROM refused")) == [
        ("hc-1", "rate-limited", 5, T, T + 5), ("hc-2", "rate-limited", 1, T, T)]


# --- PostgreSQL only -------------------------------------------------------------------------


def test_schema_has_sqlites_columns_plus_ids(pg_dsn: str) -> None:
    PgStore(pg_dsn).close()
    for table, cols in COLUMNS.items():
        with psycopg.connect(pg_dsn) as conn:
            got = [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns"
                                              " WHERE table_name = %s ORDER BY ordinal_position", (table,))]
        assert got == (["id", *cols] if table in ("readings", "duplicates") else cols)
    s = PgStore(pg_dsn)  # opening again keeps the schema (and data)
    assert s._conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    s.close()


def test_reopening_keeps_data_and_dedupes(pg_dsn: str) -> None:
    s1 = PgStore(pg_dsn)
    s1.store_batch([acc("hc-1", 0)], [], T)
    s1.close()
    s2 = PgStore(pg_dsn)
    assert s2.store_batch([acc("hc-1", 0)], [], T).duplicates == (("hc-1", 1, 0),)
    s2.close()


def test_a_foreign_schema_is_refused(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE readings (device_id TEXT, seq INTEGER)")
    with pytest.raises(SchemaError, match="readings"):
        PgStore(pg_dsn)


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    from ecgcore.pgserver import free_port

    port = free_port()
    with pytest.raises(StoreError) as err:
        PgStore(f"postgresql://ingest:s3cret@127.0.0.1:{port}/ecgpipe")
    msg = str(err.value)
    assert f"127.0.0.1:{port}" in msg and "s3cret" not in msg and "\n" not in msg, msg


def test_a_broken_connection_is_reopened_by_the_next_batch(pg_dsn: str, pg_server: str) -> None:
    s = PgStore(pg_dsn)
    pid = s._conn.info.backend_pid
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError):
        s.store_batch([acc("hc-1", 0)], [], T)
    assert s.store_batch([acc("hc-1", 0)], [], T).stored == (("hc-1", 1, 0),)
    s.close()


# --- several writers -------------------------------------------------------------------------


def _race(dsn: str, batches: list[list[Accepted]], writers: int) -> list[list[BatchResult]]:
    """Each writer (its own PgStore: its own connection and server backend) stores every batch;
    a barrier starts each round together."""
    stores = [PgStore(dsn) for _ in range(writers)]
    barrier = threading.Barrier(writers)
    results: list[list[BatchResult]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            for batch in batches:
                barrier.wait(30)
                results[i].append(stores[i].store_batch(batch, [], T))
        except BaseException as exc:  # noqa: BLE001 -- reported by the test below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for s in stores:
        s.close()
    assert not errors, errors
    return results


def test_concurrent_writers_of_the_same_keys_store_each_once(pg_dsn: str) -> None:
    batches = [[acc(f"hc-{d}", seq) for d in range(5) for seq in range(b * 10, b * 10 + 10)]
               for b in range(20)]
    everything = {a.key for batch in batches for a in batch}
    results = _race(pg_dsn, batches, writers=3)
    stored: list[Key] = [k for per in results for r in per for k in r.stored]
    dups: list[Key] = [k for per in results for r in per for k in r.duplicates]
    assert sorted(stored) == sorted(everything)  # each key stored exactly once, by someone
    assert sorted(dups) == sorted([*everything, *everything])  # two other writers had each
    for per in results:  # every copy each writer had is accounted for: stored or a duplicate
        for batch, r in zip(batches, per, strict=True):
            assert sorted((*r.stored, *r.duplicates)) == sorted(a.key for a in batch)
            assert not r.conflicts
    assert pg_rows(pg_dsn, "SELECT COUNT(*), COUNT(DISTINCT (device_id, seq)) FROM readings") == [
        (len(everything), len(everything))]
    assert pg_rows(pg_dsn, "SELECT COUNT(*) FROM duplicates") == [(2 * len(everything),)]


def test_ids_are_drawn_after_every_earlier_batch_committed(pg_dsn: str, pg_server: str) -> None:
    """A transaction holding the batch lock with an uncommitted row (id n) makes a concurrent
    store_batch wait; its rows then get ids above n, and only after n is visible."""
    s = PgStore(pg_dsn)
    s.store_batch([acc("hc-1", 0)], [], T)
    other = psycopg.connect(pg_dsn)
    other.execute("SELECT pg_advisory_xact_lock(%s)", (BATCH_LOCK,))
    other.execute("INSERT INTO readings (device_id, boot_epoch, seq, captured_at, received_at,"
                  " stored_at, sample_rate_hz, gain_uv, n_samples, backlog, strip_id, chunk, chunks,"
                  " samples, flags) VALUES ('hc-9', 1, 0, 1, 1, 1, 250, 2.5, 0, 0, 0, 0, 1, '', 0)")
    done: list[BatchResult] = []
    t = threading.Thread(target=lambda: done.append(s.store_batch([acc("hc-2", 0)], [], T)))
    t.start()
    wait_until(lambda: pg_rows(pg_server, "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'"
                                          " AND NOT granted") == [(1,)], 20, what="a waiting batch")
    assert not done
    other.commit()
    other.close()
    t.join(20)
    assert done and done[0].stored == (("hc-2", 1, 0),)
    assert pg_rows(pg_dsn, "SELECT device_id FROM readings ORDER BY id") == [("hc-1",), ("hc-9",), ("hc-2",)]
    s.close()
