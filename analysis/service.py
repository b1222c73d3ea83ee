"""The analysis process's loop, on the main thread:

    batch = readings_after(ingest.sqlite, cursor, max_batch)      read-only snapshot
    with store.batch():                                          ONE transaction:
        analyse_batch(...)                                       segments, beats, events
        state: cursor = the batch's last rowid, counters         committed together
    a batch short of max_batch (it keeps up): wait `poll_s` real seconds (or until stopped), so
    that the next batch holds several readings of each device: reading five 1-s readings of a
    device at once costs about a quarter of reading them one by one (docs/benchmarks.md)

The cursor is the ingest store's rowid (ingest/store_feed.py says why it only grows). A kill -9
before COMMIT loses the batch's work and its cursor together; the next run reads the same
readings again and, the store being as it was, writes the same rows. A kill after COMMIT loses
nothing. Stop (request_stop(), e.g. SIGTERM): the current batch is finished and committed.

It writes DIR/analysis/ready.json ({"pid", "at"}) once neurokit2 is imported and the store is
open: what `ecgpipe up` waits for.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from analysis.detect import warm_up
from analysis.errors import FeedError
from analysis.stage import analyse_batch
from analysis.store import AnalysisStore
from ecgcore.clock import Clock
from ecgcore.files import write_json_atomic
from ecgcore.logline import stamp
from ingest import store_feed
from ingest.errors import StoreError as IngestStoreError
from ingest.errors import StoreUnavailableError as IngestStoreUnavailableError
from ingest.store_feed import FeedReading

DB_NAME = "analysis.sqlite"
READY_NAME = "ready.json"


@dataclass(frozen=True)
class ServiceConfig:
    state_dir: Path
    poll_s: float = 0.5  # real seconds between looks at an idle store
    max_batch: int = 500

    @property
    def ingest_db(self) -> Path:
        return self.state_dir / "ingest" / "ingest.sqlite"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "analysis" / DB_NAME

    @property
    def ready_path(self) -> Path:
        return self.state_dir / "analysis" / READY_NAME


class IngestContext:
    """Stored neighbours, read from the ingest store (read-only)."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def device_readings(self, device_id: str, boot_epoch: int, seq_lo: int,
                        seq_hi: int) -> list[FeedReading]:
        try:
            return store_feed.device_readings(self.db, device_id, boot_epoch, seq_lo, seq_hi)
        except IngestStoreError as exc:
            raise FeedError(str(exc)) from exc


class AnalysisService:
    def __init__(self, config: ServiceConfig, clock: Clock, log: TextIO = sys.stdout) -> None:
        self.config = config
        self.clock = clock
        self._log = log
        self._stop = threading.Event()
        config.ready_path.unlink(missing_ok=True)
        self.store = AnalysisStore(config.db_path)
        self.context = IngestContext(config.ingest_db)
        self._store_away = False

    def log(self, msg: str) -> None:
        print(f"{stamp(self.clock)} {msg}", file=self._log, flush=True)

    def request_stop(self) -> None:
        self._stop.set()

    def step(self) -> int:
        """Analyse one batch if there is one; returns how many readings it held. While the
        ingest store's server is away (PostgreSQL killed or restarting) nothing is analysed and
        the cursor stays: the same readings are read again once it is back."""
        try:
            return self._step()
        except FeedError as exc:
            if not isinstance(exc.__cause__, IngestStoreUnavailableError):
                raise
            if not self._store_away:
                self.log(f"ingest store unavailable ({exc}); waiting for it")
            self._store_away = True
            return 0

    def _step(self) -> int:
        cursor = int(self.store.state().get("cursor", 0))
        try:
            batch = store_feed.readings_after(self.config.ingest_db, cursor, self.config.max_batch)
            top = store_feed.last_rowid(self.config.ingest_db)
        except IngestStoreError as exc:
            raise FeedError(str(exc)) from exc
        if self._store_away:
            self.log("ingest store back")
            self._store_away = False
        if not batch:
            return 0
        now = self.clock.now()
        with self.store.batch():
            state = self.store.state()
            summary = analyse_batch(self.store, self.context, batch, now)
            self.store.set_state({
                "cursor": batch[-1].rowid, "store_rowid": max(top, batch[-1].rowid),
                "analysed": state.get("analysed", 0) + summary.analysed,
                "batches": state.get("batches", 0) + 1, "updated_at": now,
                "last_stored_at": max(r.stored_at for r in batch)})
        if summary.raised or summary.updated:
            self.log(f"batch of {len(batch)}: {summary.raised} events raised, {summary.updated} updated"
                     f" (cursor {batch[-1].rowid})")
        return len(batch)

    def run(self) -> int:
        warm_up()
        write_json_atomic(self.config.ready_path, {"pid": os.getpid(), "at": self.clock.now()})
        self.log(f"ready: reading {self.config.ingest_db}, writing {self.config.db_path}")
        try:
            while not self._stop.is_set():
                if self.step() < self.config.max_batch:  # kept up: let readings gather
                    self._stop.wait(self.config.poll_s)
        finally:
            self.store.close()
        self.log("stopped")
        return 0
