"""build_acks(): per-device ack messages naming stored and duplicate seqs as ranges."""

from __future__ import annotations

from ingest.acker import build_acks
from ingest.store import BatchResult
from wire import decode_ack


def test_ranges_per_device_include_duplicates() -> None:
    res = BatchResult(
        stored=(("hc-2", 1, 10), ("hc-1", 1, 0), ("hc-1", 1, 1), ("hc-1", 1, 2), ("hc-1", 1, 5)),
        duplicates=(("hc-1", 1, 3), ("hc-1", 1, 1), ("hc-3", 2, 7)),
        quarantined=4,
    )
    acks = build_acks(res)
    assert [a.device_id for a in acks] == ["hc-1", "hc-2", "hc-3"]
    assert [a.topic for a in acks] == ["heartcheck/hc-1/ack", "heartcheck/hc-2/ack", "heartcheck/hc-3/ack"]
    assert acks[0].ranges == ((0, 3), (5, 5))
    assert [decode_ack(a.payload) for a in acks] == [
        ("hc-1", [(0, 3), (5, 5)]), ("hc-2", [(10, 10)]), ("hc-3", [(7, 7)])
    ]


def test_nothing_stored_means_no_acks() -> None:
    assert build_acks(BatchResult(quarantined=3)) == []


def test_seqs_across_boot_epochs_merge() -> None:
    res = BatchResult(stored=(("hc-1", 1, 0), ("hc-1", 2, 1)))
    assert build_acks(res)[0].ranges == ((0, 1),)
