from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from devices.errors import OutboxError
from devices.outbox import REASON_DROP_OLDEST, Outbox
from devices.outbox_view import buffered_readings, device_summaries, ledger_sets
from devices.profile import PatientProfile

PROFILE = PatientProfile(70, 1.0, 0.01, 1)
NOW = 1_700_000_000.0


def make_outbox(path: Path) -> Outbox:
    box = Outbox(path, capacity=3)
    box.register("hc-a", PROFILE, NOW)
    box.register("hc-b", PROFILE, NOW)
    for seq in range(5):
        box.append("hc-a", seq, 1, NOW + seq, b"p" * (10 + seq), NOW + seq)
    box.commit()
    return box


def test_summaries_of_a_live_outbox(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = make_outbox(path)
    box.mark_sent("hc-a", [3], NOW + 9)
    box.commit()
    box.append("hc-a", 5, 1, NOW + 5, b"q", NOW)  # uncommitted: readers must not see it
    a, b = device_summaries(path)
    assert a == {"device_id": "hc-a", "boot_epoch": 1, "generated": 5, "buffered": 3,
                 "oldest_seq": 2, "newest_seq": 4, "oldest_captured_at": NOW + 2,
                 "bytes": 12 + 13 + 14, "evicted": 2}
    assert b == {"device_id": "hc-b", "boot_epoch": 1, "generated": 0, "buffered": 0,
                 "oldest_seq": None, "newest_seq": None, "oldest_captured_at": None,
                 "bytes": 0, "evicted": 0}
    rows = buffered_readings(path, "hc-a")
    assert [r["seq"] for r in rows] == [2, 3, 4]
    assert rows[1] == {"seq": 3, "boot_epoch": 1, "captured_at": NOW + 3, "enqueued_at": NOW + 3,
                       "attempts": 1, "last_sent_at": NOW + 9, "bytes": 13}
    sets = ledger_sets(path)
    assert sets["hc-a"] == {"generated": 5, "buffered": {2, 3, 4},
                            "evicted": {0: REASON_DROP_OLDEST, 1: REASON_DROP_OLDEST}}
    assert sets["hc-b"] == {"generated": 0, "buffered": set(), "evicted": {}}
    box.commit()
    assert ledger_sets(path)["hc-a"]["generated"] == 6


def test_reads_a_stopped_fleets_outbox_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    make_outbox(path).close()
    assert not Path(f"{path}-wal").exists()  # a clean close checkpoints and removes the WAL
    before = path.stat().st_mtime_ns
    assert [s["generated"] for s in device_summaries(path)] == [5, 0]
    assert path.stat().st_mtime_ns == before


def test_a_missing_or_empty_outbox_reads_as_empty(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "outbox.sqlite"
    assert device_summaries(missing) == []
    assert buffered_readings(missing, "hc-a") == []
    assert ledger_sets(missing) == {}
    assert not missing.parent.exists()
    blank = tmp_path / "blank.sqlite"
    sqlite3.connect(blank).close()  # the file exists, the tables do not yet
    assert device_summaries(blank) == [] and ledger_sets(blank) == {}


def test_a_file_that_is_not_an_outbox_is_a_device_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(OutboxError):
        device_summaries(junk)
