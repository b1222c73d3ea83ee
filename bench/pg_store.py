"""PostgreSQL store throughput: readings per second stored by PgStore, as a ratio to SqliteStore
storing the same batches in the same run.

    .venv/bin/python -m bench.pg_store [--batch-sizes 1,50,500] [--readings 20000] [--writers 2]

Both stores durable as the service runs them: SQLite in WAL with synchronous=FULL, PostgreSQL
(a throwaway server from ecgcore/pgserver.py, fsync on, synchronous_commit on) over loopback
TCP. The readings (1 s of ECG at 250 Hz: 500 bytes of samples, 50 devices) are validated once
beforehand, so only store_batch is timed; each batch size gets a fresh SQLite file and a fresh
database. Batch size 1 stores at most 1,000 readings (one commit each). With --writers N, N
processes each store their own devices' batches into one database at once (PgStore's batch
lock serialises them): the aggregate rate, against one writer's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ecgcore.pgserver import create_database, temporary_server
from ingest.pg_store import PgStore
from ingest.store import SqliteStore
from ingest.store_common import Store
from ingest.validate import Accepted, validate
from wire import Reading, encode_reading

DEVICES = 50
T0 = 1_700_000_000.0
MAX_SINGLES = 1_000


def readings(n: int, prefix: str = "hc") -> list[Accepted]:
    rng = np.random.default_rng(7)
    samples = (rng.normal(0, 300, 250)).astype(np.int16)
    out = []
    for i in range(n):
        dev, seq = f"{prefix}-{i % DEVICES:04d}", i // DEVICES
        r = Reading(device_id=dev, boot_epoch=1, seq=seq, captured_at=T0 + seq,
                    sample_rate_hz=250, gain_uv=2.5, samples=samples)
        v = validate(f"heartcheck/{dev}/ecg", encode_reading(r), T0 + n)
        if not isinstance(v, Accepted):
            raise SystemExit(f"the benchmark's reading was quarantined: {v}")
        out.append(v)
    return out


def timed(store: Store, batches: list[list[Accepted]]) -> float:
    """Readings per second stored (store_batch only)."""
    t = time.perf_counter()
    for b in batches:
        store.store_batch(b, [], T0)
    dt = time.perf_counter() - t
    store.close()
    return sum(len(b) for b in batches) / dt


def _write(dsn: str, prefix: str, n: int, size: int, ready: Any, go: Any, out: Any) -> None:
    acc = readings(n, prefix)
    batches = [acc[i : i + size] for i in range(0, n, size)]
    store = PgStore(dsn)
    ready.put(1)
    go.wait()
    t = time.perf_counter()
    rate = timed(store, batches)
    out.put((t, time.perf_counter(), rate))


def concurrent(admin_dsn: str, db: str, writers: int, n: int, size: int) -> dict[str, Any]:
    """`writers` processes store n readings each (their own devices) into one database, all
    starting together once their readings are built: the aggregate readings/s, and each's."""
    create_database(admin_dsn, db)
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + db
    PgStore(dsn).close()  # the schema, before the race
    ctx = mp.get_context("fork")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_write, args=(dsn, f"w{i}", n, size, ready, go, out))
             for i in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    go.set()
    got = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    span = max(e for _, e, _ in got) - min(s for s, _, _ in got)
    return {"aggregate": round(writers * n / span), "each": [round(r) for _, _, r in got]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default="1,50,500")
    p.add_argument("--readings", type=int, default=20_000)
    p.add_argument("--writers", type=int, default=0)
    a = p.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, temporary_server(Path(tmp), durable=True) as dsn:
        for size in (int(s) for s in a.batch_sizes.split(",")):
            n = min(a.readings, MAX_SINGLES) if size == 1 else a.readings
            acc = readings(n)
            batches = [acc[i : i + size] for i in range(0, n, size)]
            lite = timed(SqliteStore(Path(tmp) / f"s{size}.sqlite"), batches)
            create_database(dsn, f"b{size}")
            pg = timed(PgStore(dsn.rsplit("/", 1)[0] + f"/b{size}"), batches)
            rows.append({"batch": size, "readings": n, "sqlite_per_s": round(lite),
                         "pg_per_s": round(pg), "ratio": round(pg / lite, 3)})
            print(f"batch {size:>4}: SQLite {lite:>9,.0f}/s  PostgreSQL {pg:>9,.0f}/s"
                  f"  ratio {pg / lite:.3f}", flush=True)
        if a.writers:
            size, n = 50, a.readings // a.writers
            doc = concurrent(dsn, "conc", a.writers, n, size)
            rows.append({"writers": a.writers, "batch": size, **doc})
            print(f"{a.writers} writers, batch {size}: aggregate {doc['aggregate']:,.0f}/s,"
                  f" each {[round(x) for x in doc['each']]}", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
