"""The service loop without a broker: a fake Source and a recording Store (httpx-style
injection). Commit-before-PUBACK ordering, fallback on a failing message, ready.json, stop."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from ecgcore.clock import ManualClock
from ingest.errors import StoreError
from ingest.handoff import BatchQueue
from ingest.service import IngestService, ServiceConfig
from ingest.store import BatchResult, SqliteStore
from ingest.subscriber import InboundMessage, SubscriberStats
from ingest.validate import Accepted, Quarantined
from tests.conftest import wait_until
from tests.ingest.conftest import payload_of
from wire import decode_ack


class FakeSource:
    def __init__(self, events: list[str]) -> None:
        self.queue: BatchQueue[InboundMessage] = BatchQueue(maxsize=10_000)
        self.ready = threading.Event()
        self.stats = SubscriberStats()
        self.events = events
        self.acked: list[int] = []
        self.published: list[tuple[str, bytes]] = []
        self.started = self.stopped = False

    @property
    def connected(self) -> bool:
        return True

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def ack_broker(self, deliveries: Sequence[InboundMessage]) -> int:
        self.events.append(f"puback {[d.mid for d in deliveries]}")
        self.acked.extend(d.mid for d in deliveries)
        return len(deliveries)

    def publish_acks(self, messages: Sequence[tuple[str, bytes]]) -> int:
        self.events.append(f"acks {len(messages)}")
        self.published.extend(messages)
        return len(messages)


class RecordingStore:
    """SqliteStore that logs commits and can be told to fail on some seqs."""

    def __init__(self, path: Path, events: list[str], poison: set[int] | None = None,
                 broken: bool = False) -> None:
        self.inner = SqliteStore(path)
        self.events = events
        self.poison = poison or set()
        self.broken = broken
        self.closed = False

    def store_batch(self, accepted: Sequence[Accepted], quarantined: Sequence[Quarantined],
                    stored_at: float) -> BatchResult:
        if self.broken or any(a.reading.seq in self.poison for a in accepted):
            raise StoreError("injected failure")
        res = self.inner.store_batch(accepted, quarantined, stored_at)
        self.events.append(f"commit {len(accepted)}+{len(quarantined)}")
        return res

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def delivery(mid: int, payload: bytes, topic: str = "heartcheck/hc-1/ecg") -> InboundMessage:
    return InboundMessage(topic, payload, mid, 1, 1_700_000_000.0, 1)


def make(tmp_path: Path, events: list[str], *, acks: bool = True, **store_kw: object
         ) -> tuple[IngestService, FakeSource, RecordingStore, ManualClock, io.StringIO]:
    clock = ManualClock()
    src = FakeSource(events)
    store = RecordingStore(tmp_path / "db.sqlite", events, **store_kw)  # type: ignore[arg-type]
    out = io.StringIO()
    cfg = ServiceConfig(state_dir=tmp_path / "state", host="h", port=1, acks=acks, poll_s=0.02)
    return IngestService(cfg, clock, store=store, source=src, out=out), src, store, clock, out


def test_commit_then_acks_then_puback_and_quarantined_ones_are_pubacked(tmp_path: Path) -> None:
    events: list[str] = []
    svc, src, _store, _clock, _out = make(tmp_path, events)
    batch = [delivery(1, payload_of("hc-1", 0)), delivery(2, b"garbage"),
             delivery(3, payload_of("hc-1", 1)), delivery(4, payload_of("hc-1", 0))]
    res = svc.handle_batch(batch)
    assert events == ["commit 3+1", "acks 1", "puback [1, 2, 3, 4]"]
    assert res.stored_by_device() == {"hc-1": [0, 1]} and res.duplicates_by_device() == {"hc-1": [0]}
    ((topic, payload),) = src.published
    assert topic == "heartcheck/hc-1/ack" and decode_ack(payload) == ("hc-1", [(0, 1)])
    assert (svc.stats.stored, svc.stats.duplicates, svc.stats.quarantined) == (2, 1, 1)


def test_no_acks_published_when_acks_are_off(tmp_path: Path) -> None:
    events: list[str] = []
    svc, src, *_ = make(tmp_path, events, acks=False)
    svc.handle_batch([delivery(1, payload_of("hc-1", 0))])
    assert events == ["commit 1+0", "puback [1]"] and src.published == []


def test_one_failing_message_is_quarantined_as_internal_error(tmp_path: Path) -> None:
    events: list[str] = []
    svc, src, store, *_ = make(tmp_path, events, poison={3})
    batch = [delivery(i, payload_of("hc-1", i)) for i in range(6)]
    res = svc.handle_batch(batch)
    assert res.stored_by_device() == {"hc-1": [0, 1, 2, 4, 5]}
    assert res.quarantined == 1
    assert src.acked == [0, 1, 2, 3, 4, 5]
    (row,) = store.inner._db.execute("SELECT reason, detail, raw FROM quarantine").fetchall()
    assert row[0] == "internal-error" and "injected failure" in row[1]
    assert row[2] == payload_of("hc-1", 3)
    assert svc.stats.internal_errors == 1 and svc.stats.fallback_batches == 1


def test_a_broken_store_acknowledges_nothing_and_raises(tmp_path: Path) -> None:
    events: list[str] = []
    svc, src, *_ = make(tmp_path, events, broken=True)
    with pytest.raises(StoreError):
        svc.handle_batch([delivery(1, payload_of("hc-1", 0))])
    assert src.acked == [] and src.published == []


def test_run_writes_ready_logs_stats_and_stops_cleanly(tmp_path: Path) -> None:
    events: list[str] = []
    stale = tmp_path / "state" / "ingest" / "ready.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"pid": 1}')
    svc, src, store, clock, out = make(tmp_path, events)
    assert not stale.exists()  # an old run's ready.json is removed before we are ready
    code: list[int] = []
    t = threading.Thread(target=lambda: code.append(svc.run()))
    t.start()
    try:
        src.queue.put(delivery(7, payload_of("hc-1", 0)))
        wait_until(lambda: src.acked == [7], 10, what="first batch")
        assert not stale.exists()
        src.ready.set()
        wait_until(stale.exists, 10, what="ready.json")
        doc = json.loads(stale.read_text())
        assert doc["client_id"] == "ecgpipe-ingest" and doc["at"] == clock.now()
        assert isinstance(doc["pid"], int) and doc["pid"] > 1
        clock.advance(11)
        wait_until(lambda: "stats: stored=1 duplicates=0 quarantined=0" in out.getvalue(), 10,
                   what="a stats line")
    finally:
        svc.request_stop()
        t.join(10)
    assert code == [0]
    assert src.started and src.stopped and store.closed
    assert "stopped (flushed=None). stats: stored=1" in out.getvalue()
