from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import ConfigError, OutboxError
from devices.outbox import REASON_DROP_OLDEST, REASON_REJECT_NEW, Outbox
from devices.outbox_view import ledger_sets
from devices.profile import PatientProfile

PROFILE = PatientProfile(70, 1.0, 0.01, 1)
NOW = 1_700_000_000.0

# docs/architecture.md, column by column: (name, type, notnull, pk position)
EXPECTED_SCHEMA = {
    "devices": [("device_id", "TEXT", 0, 1), ("boot_epoch", "INTEGER", 1, 0),
                ("next_seq", "INTEGER", 1, 0), ("hr_bpm", "REAL", 0, 0), ("hrv", "REAL", 0, 0),
                ("noise", "REAL", 0, 0), ("seed", "INTEGER", 0, 0), ("created_at", "REAL", 0, 0)],
    "outbox": [("device_id", "TEXT", 1, 1), ("seq", "INTEGER", 1, 2),
               ("boot_epoch", "INTEGER", 1, 0), ("captured_at", "REAL", 1, 0),
               ("enqueued_at", "REAL", 1, 0), ("payload", "BLOB", 1, 0),
               ("attempts", "INTEGER", 1, 0), ("last_sent_at", "REAL", 0, 0)],
    "evictions": [("device_id", "TEXT", 1, 1), ("seq", "INTEGER", 1, 2),
                  ("boot_epoch", "INTEGER", 1, 0), ("captured_at", "REAL", 1, 0),
                  ("reason", "TEXT", 1, 0), ("evicted_at", "REAL", 1, 0)],
}


def fill(box: Outbox, device: str, n: int, boot: int = 1) -> list[int]:
    start = box.next_seq(device)
    for seq in range(start, start + n):
        box.append(device, seq, boot, NOW + seq, b"x" * 10, NOW)
    return list(range(start, start + n))


def test_schema_and_wal_match_the_architecture(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite")
    box.close()
    db = sqlite3.connect(tmp_path / "outbox.sqlite")
    for table, columns in EXPECTED_SCHEMA.items():
        info = db.execute(f"PRAGMA table_info({table})").fetchall()
        assert [(c[1], c[2], c[3], c[5]) for c in info] == columns, table
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_register_counts_boots_and_keeps_the_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    assert box.register("hc-1", PROFILE, NOW) == (1, 0)
    fill(box, "hc-1", 3)
    box.close()
    box = Outbox(path)
    assert box.register("hc-1", PROFILE, NOW) == (2, 3)
    assert box.count("hc-1") == 3
    box.close()
    assert Outbox(path).register("hc-1", PROFILE, NOW) == (3, 3)


def test_an_uncommitted_reading_never_consumed_its_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.register("hc-1", PROFILE, NOW)
    fill(box, "hc-1", 2)
    box.commit()
    fill(box, "hc-1", 5)  # the process dies before this commit
    box._db.close()  # closing with an open transaction rolls it back, like kill -9
    again = Outbox(path)
    assert again.register("hc-1", PROFILE, NOW) == (2, 2)
    assert [s for s, _ in again.pending("hc-1", limit=10)] == [0, 1]


def test_append_insists_on_the_next_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(OutboxError):
        box.append("hc-1", 0, 1, NOW, b"x", NOW)  # not registered
    box.register("hc-1", PROFILE, NOW)
    with pytest.raises(OutboxError):
        box.append("hc-1", 1, 1, NOW, b"x", NOW)  # skips seq 0


def test_drop_oldest_evicts_and_logs(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", capacity=3, policy="drop-oldest")
    box.register("hc-1", PROFILE, NOW)
    box.register("hc-2", PROFILE, NOW)
    fill(box, "hc-2", 2)
    results = [box.append("hc-1", s, 1, NOW + s, b"y", NOW) for s in range(5)]
    box.commit()
    assert [r.evicted_seq for r in results] == [None, None, None, 0, 1]
    assert all(r.stored for r in results)
    sets = ledger_sets(tmp_path / "o.sqlite")
    assert sets["hc-1"] == {"generated": 5, "buffered": {2, 3, 4},
                            "evicted": {0: REASON_DROP_OLDEST, 1: REASON_DROP_OLDEST}}
    assert sets["hc-2"]["buffered"] == {0, 1}  # capacity is per device
    assert box.count("hc-1") == 3 and box.evicted("hc-1") == 2 and box.evicted() == 2


def test_reject_new_keeps_the_old_rows_and_still_counts_the_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", capacity=3, policy="reject-new")
    box.register("hc-1", PROFILE, NOW)
    results = [box.append("hc-1", s, 1, NOW + s, b"y", NOW) for s in range(5)]
    box.commit()
    assert [(r.stored, r.evicted_seq) for r in results][3:] == [(False, 3), (False, 4)]
    sets = ledger_sets(tmp_path / "o.sqlite")
    assert sets["hc-1"] == {"generated": 5, "buffered": {0, 1, 2},
                            "evicted": {3: REASON_REJECT_NEW, 4: REASON_REJECT_NEW}}


def test_pending_delete_and_mark_sent(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.register("hc-1", PROFILE, NOW)
    fill(box, "hc-1", 10)
    assert [s for s, _ in box.pending("hc-1", limit=3)] == [0, 1, 2]
    assert [s for s, _ in box.pending("hc-1", limit=3, after_seq=7)] == [8, 9]
    assert box.delete("hc-1", [0, 1, 1, 99]) == 2
    assert box.delete_ranges("hc-1", [(4, 5), (9, 20)]) == 3
    assert box.count("hc-1") == 5
    assert sorted(box.payloads("hc-1", [2, 4, 6])) == [2, 6]
    box.mark_sent("hc-1", [2, 3], NOW + 5)
    box.mark_sent("hc-1", [2], NOW + 9)
    box.commit()
    rows = {s: (a, t) for s, a, t in box._db.execute(
        "SELECT seq, attempts, last_sent_at FROM outbox")}
    assert rows[2] == (2, NOW + 9) and rows[3] == (1, NOW + 5) and rows[6] == (0, None)


def test_transaction_rolls_back_and_resyncs_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.register("hc-1", PROFILE, NOW)
    box.commit()
    def fill_then_fail() -> None:
        with box.transaction():
            fill(box, "hc-1", 4)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fill_then_fail()
    assert box.count("hc-1") == 0 and box.next_seq("hc-1") == 0
    with box.transaction():
        fill(box, "hc-1", 2)
    assert ledger_sets(tmp_path / "o.sqlite")["hc-1"]["buffered"] == {0, 1}


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Outbox(tmp_path / "o.sqlite", capacity=0)
    with pytest.raises(ConfigError):
        Outbox(tmp_path / "o.sqlite", policy="drop-newest")


ops = st.lists(st.one_of(
    st.tuples(st.just("gen"), st.integers(1, 4)),
    st.tuples(st.just("del"), st.integers(0, 30)),
    st.tuples(st.just("commit"), st.just(0)),
), max_size=40)


@settings(max_examples=40, deadline=None)
@given(ops=ops, policy=st.sampled_from(["drop-oldest", "reject-new"]), cap=st.integers(1, 6))
def test_every_generated_seq_is_in_exactly_one_place(ops: list[tuple[str, int]], policy: str,
                                                     cap: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "o.sqlite"
        box = Outbox(path, capacity=cap, policy=policy)
        box.register("hc-1", PROFILE, NOW)
        released: set[int] = set()
        for op, arg in ops:
            if op == "gen":
                fill(box, "hc-1", arg)
            elif op == "del":
                released |= {arg} if box.delete("hc-1", [arg]) else set()
            else:
                box.commit()
            assert box.count("hc-1") <= cap
        box.commit()
        (count,) = box._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        assert box.count("hc-1") == count
        box.close()
        s = ledger_sets(path)["hc-1"]
        evicted = set(s["evicted"])
        assert not (s["buffered"] & evicted) and not (released & (s["buffered"] | evicted))
        assert s["buffered"] | evicted | released == set(range(s["generated"]))
