"""The PostgreSQL implementation of Store: the same contract as SqliteStore (ingest/store.py),
for several ingest workers writing one database.

Semantics are SqliteStore's, by construction: both read the stored content of the batch's keys
inside their write transaction and hand it to store_common.plan_batch, which decides what is
new, a duplicate (recorded in `duplicates`, confirmed) or a conflict (quarantined with reason
`conflict`, never confirmed, the first kept); quarantined raw bytes are capped at
MAX_QUARANTINE_RAW; `refused` is an upsert; one transaction per batch, and StoreError with
nothing committed on any failure. The schema is SQLite's (store_common.COLUMNS) with SQL types
that give back the same Python values (BIGINT, DOUBLE PRECISION, BYTEA, TEXT COLLATE "C" so
that text sorts bytewise as in SQLite), plus `id BIGSERIAL` on readings and duplicates: rowid's
role (the analysis feed's cursor; duplicates' insertion order).

Concurrency: every batch first takes ONE transaction-scoped advisory lock
(pg_advisory_xact_lock(BATCH_LOCK)), held until its COMMIT or ROLLBACK. So batches of all
workers run one after the other, as BEGIN IMMEDIATE makes them in SQLite, and both problems of
several writers go away:

- (a) two workers with copies of one reading: the second to get the lock reads the key the
  first committed (READ COMMITTED, on purpose: each statement's snapshot is taken after the
  lock was granted; under REPEATABLE READ the snapshot would be the lock statement's own, taken
  before the wait) and counts its copy as a duplicate or a conflict. No unique violation, no
  lost copy. The insert is a plain INSERT/COPY, not ON CONFLICT DO NOTHING: a key violation
  could then only come from a writer that skips the lock, and it fails loudly (StoreError,
  nothing committed) rather than being reported as stored.
- (b) the feed's cursor: a BIGSERIAL value is taken at insert time and becomes visible at
  commit, so two concurrent transactions could commit ids 11 then 10, and a reader that saw
  11 first moves its cursor past 10 for ever. Under the lock, ids are drawn and committed in
  lock order: a batch draws its ids only after every earlier batch has committed (PostgreSQL
  makes a commit visible before it releases the transaction's locks), so a row with a lower id
  is always visible no later than one with a higher id, and `id > cursor` never skips a row.
  (A rolled-back batch leaves a gap in the ids, which a cursor steps over harmlessly.)

The price: writers never store in parallel. A batch holds the lock for its key lookup, its
inserts and its commit (a WAL flush, ~1 ms here), so N workers store about as fast as one;
what several workers do in parallel is the rest (MQTT, decoding, validation, signatures).
Measured in bench/pg_store.py and docs/benchmarks.md.

Batched inserts (measured on this machine, fsync on, 500-byte samples): binary COPY straight
into readings is the fastest from 50 rows a batch (50: 87,000 rows/s, 500: 243,000) against
executemany in pipeline mode (57,000 and 83,000) and INSERT ... SELECT FROM unnest(arrays)
(36,000 and 58,000); for one row a plain INSERT is cheapest (COPY's extra round trip).
COPY needs no temp table here because the lock already made the batch's keys new.

Durability: synchronous_commit is set `on` for the session (the default, not left to the
server's configuration): COMMIT returns only once the batch's WAL is flushed to the server's
disk (fsync), so a batch that store_batch returned survives a crash of PostgreSQL or of its
machine (not the loss of that disk; with synchronous standbys configured it waits for them
too). If the connection breaks during COMMIT the outcome is unknown: StoreError, nothing is
confirmed, and a re-sent copy is then found stored (a duplicate) or stored anew.

One PgStore is one connection used by one thread at a time, like SqliteStore. After a broken
connection (the server restarted) the next store_batch connects again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import conninfo

from ingest.errors import SchemaError, StoreError, StoreUnavailableError
from ingest.store_common import (
    COLUMNS,
    CONTENT_FIELDS,
    RATE_LIMITED,
    BatchResult,
    Content,
    Key,
    Row,
    plan_batch,
    stored_content,
)
from ingest.validate import Accepted, Quarantined

BATCH_LOCK = 0x6563_6770_6970_6531  # "ecgpipe1": the advisory lock every batch (and the schema) takes
CONNECT_TIMEOUT_S = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (id BIGSERIAL NOT NULL UNIQUE,
    device_id TEXT COLLATE "C" NOT NULL, boot_epoch BIGINT NOT NULL, seq BIGINT NOT NULL,
    captured_at DOUBLE PRECISION NOT NULL, received_at DOUBLE PRECISION NOT NULL,
    stored_at DOUBLE PRECISION NOT NULL, sample_rate_hz BIGINT NOT NULL,
    gain_uv DOUBLE PRECISION NOT NULL, n_samples BIGINT NOT NULL, backlog BIGINT NOT NULL,
    strip_id BIGINT NOT NULL, chunk BIGINT NOT NULL, chunks BIGINT NOT NULL,
    samples BYTEA NOT NULL, flags BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, boot_epoch, seq));
CREATE TABLE IF NOT EXISTS duplicates (id BIGSERIAL PRIMARY KEY,
    device_id TEXT COLLATE "C" NOT NULL, boot_epoch BIGINT NOT NULL, seq BIGINT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (id BIGSERIAL PRIMARY KEY,
    received_at DOUBLE PRECISION NOT NULL, topic TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C" NOT NULL, detail TEXT NOT NULL, raw BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS refused (device_id TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C" NOT NULL, count BIGINT NOT NULL, first_at DOUBLE PRECISION NOT NULL,
    last_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, reason));
"""
WITH_ID = ("readings", "duplicates")  # tables with an id column the SQLite schema has not

_READING_COLS = ", ".join(COLUMNS["readings"])
_READING_TYPES = ["text", "int8", "int8", "float8", "float8", "float8", "int8", "float8", "int8",
                  "int8", "int8", "int8", "int8", "bytea", "int8"]
_INSERT_READING = (f"INSERT INTO readings ({_READING_COLS})"  # noqa: S608 -- constant column names
                   f" VALUES ({', '.join(['%s'] * 15)})")
_COPY_READINGS = f"COPY readings ({_READING_COLS}) FROM STDIN (FORMAT BINARY)"
_COPY_FROM_ROWS = 2  # COPY from this many rows; one row is a plain INSERT
_EXISTING = (
    f"SELECT r.device_id, r.boot_epoch, r.seq, {', '.join(f'r.{c}' for c in CONTENT_FIELDS)}"  # noqa: S608 -- constant column names
    " FROM readings AS r JOIN unnest(%s::text[], %s::int8[], %s::int8[]) AS k(d, b, s)"
    " ON r.device_id = k.d AND r.boot_epoch = k.b AND r.seq = k.s"
)
_INSERT_DUPLICATE = ("INSERT INTO duplicates (device_id, boot_epoch, seq, received_at)"
                     " VALUES (%s, %s, %s, %s)")
_INSERT_QUARANTINE = ("INSERT INTO quarantine (received_at, topic, reason, detail, raw)"
                      " VALUES (%s, %s, %s, %s, %s)")
_UPSERT_REFUSED = (
    "INSERT INTO refused (device_id, reason, count, first_at, last_at) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (device_id, reason) DO UPDATE SET count = refused.count + excluded.count,"
    " last_at = excluded.last_at"
)


def where(dsn: str) -> str:
    """host:port/dbname of a DSN, for messages: never its password."""
    try:
        info = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(an unparsable DSN)"
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def scrub(dsn: str, text: str) -> str:
    """The first line of an error text, without the DSN's password should it appear."""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    return line.replace(str(password), "***") if password else line


def connect(dsn: str, **kw: Any) -> psycopg.Connection[Any]:
    """A connection, or StoreUnavailableError in one line naming host:port (never the password)."""
    try:
        return psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, **kw)
    except psycopg.Error as exc:
        reason = re.sub(r"^connection failed: ", "", scrub(dsn, str(exc)))
        raise StoreUnavailableError(f"cannot reach the PostgreSQL store at {where(dsn)}: {reason}") from exc


class PgStore:
    """Store on PostgreSQL (one connection; see the module docstring for the locking)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn = self._open()

    def _open(self) -> psycopg.Connection[Any]:
        conn = connect(self.dsn, autocommit=False)
        try:
            conn.execute("SET synchronous_commit TO on")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (BATCH_LOCK,))  # racing CREATEs fail
            conn.execute(SCHEMA)
            self._check_schema(conn)
            conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the store at {where(self.dsn)}: {scrub(self.dsn, str(exc))}"
                             ) from exc
        except SchemaError:
            conn.close()
            raise
        return conn

    def _check_schema(self, conn: psycopg.Connection[Any]) -> None:
        for table, expected in COLUMNS.items():
            want = ["id", *expected] if table in WITH_ID else expected
            cols = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = %s ORDER BY ordinal_position", (table,))]
            if cols != want:
                raise SchemaError(f"{where(self.dsn)}: table {table} has columns {cols},"
                                  f" expected {want}")

    def store_batch(
        self, accepted: Sequence[Accepted], quarantined: Sequence[Quarantined], stored_at: float,
        refused: Mapping[str, int] | None = None,
    ) -> BatchResult:
        """Store one batch in one transaction; StoreError (and nothing committed) on failure.
        `refused`: per device, messages of this batch the rate limit refused (counted only)."""
        if self._conn.closed or self._conn.broken:
            self._conn = self._open()
        conn = self._conn
        try:
            try:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (BATCH_LOCK,))
                plan = plan_batch(accepted, quarantined, self._existing([a.key for a in accepted]),
                                  stored_at)
                self._insert_readings(plan.rows)
                with conn.cursor() as cur:
                    if plan.dup_rows:
                        cur.executemany(_INSERT_DUPLICATE, plan.dup_rows)
                    if plan.quarantine_rows:
                        cur.executemany(_INSERT_QUARANTINE, plan.quarantine_rows)
                    if refused:
                        cur.executemany(_UPSERT_REFUSED, [(dev, RATE_LIMITED, n, stored_at, stored_at)
                                                          for dev, n in refused.items()])
                conn.commit()
            except BaseException:
                self._rollback()
                raise
        except (psycopg.Error, OverflowError, ValueError, TypeError) as exc:
            what = f"{len(accepted)} readings + {len(quarantined)} quarantined"
            # the server went away (killed, restarting, shutting down): nothing committed, and
            # nothing is wrong with the batch; the service retries it once the server is back
            gone = isinstance(exc, psycopg.OperationalError) or conn.closed or conn.broken
            raise (StoreUnavailableError if gone else StoreError)(
                f"storing a batch of {what} at {where(self.dsn)} failed:"
                f" {scrub(self.dsn, str(exc))}") from exc
        return plan.result()

    def _rollback(self) -> None:
        if not (self._conn.closed or self._conn.broken):
            try:
                self._conn.rollback()
            except psycopg.Error:
                self._conn.close()  # the next batch connects again

    def _insert_readings(self, rows: list[Row]) -> None:
        if len(rows) < _COPY_FROM_ROWS:
            for row in rows:
                self._conn.execute(_INSERT_READING, row)
            return
        with self._conn.cursor() as cur, cur.copy(_COPY_READINGS) as copy:
            copy.set_types(_READING_TYPES)
            for row in rows:
                copy.write_row(row)

    def _existing(self, keys: Sequence[Key]) -> dict[Key, Content]:
        """The stored content of those of these keys that are stored: one indexed join."""
        if not keys:
            return {}
        unique = list(dict.fromkeys(keys))
        cols = ([k[0] for k in unique], [k[1] for k in unique], [k[2] for k in unique])
        return {(str(r[0]), int(r[1]), int(r[2])): stored_content(r[3:])
                for r in self._conn.execute(_EXISTING, cols)}

    def close(self) -> None:
        try:
            self._conn.close()
        except psycopg.Error as exc:
            raise StoreError(f"closing the store at {where(self.dsn)}: {exc}") from exc
