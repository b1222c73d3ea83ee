"""devices/resend.py: the re-send policy's bookkeeping, on its own (pure, no device)."""

from __future__ import annotations

import math
import random

import pytest

from devices.resend import GAP, INGEST_SESSION_LOST, NO_PUBACK, PROBE, REFUSED, SESSION_LOST, InFlight


def flights(base: float = 10.0, cap: float = 80.0) -> InFlight:
    return InFlight(probe_base=base, probe_cap=cap, rng=random.Random(7))


def test_copies_are_numbered_and_a_resend_moves_a_reading_to_the_end() -> None:
    f = flights()
    for seq in (0, 1, 2):
        f.sent(seq, now=0.0)
    f.sent(0, now=1.0)
    assert list(f.flights) == [1, 2, 0]
    assert (f.flights[0].first, f.flights[0].last, f.flights[0].copies) == (1, 4, 2)


def test_a_confirmation_marks_what_was_sent_before_the_confirmed_first_copy() -> None:
    f = flights()
    for seq in range(5):
        f.sent(seq, now=0.0)
    f.sent(1, now=0.5)  # 1's latest copy now comes after 3's first
    assert f.confirmed([3], now=1.0) == 2  # 0 and 2; not 1 (its latest copy may be on its way)
    assert f.due(1.0, limit=10) == [(0, GAP), (2, GAP)]
    assert f.due(1.0, limit=10) == [(0, GAP), (2, GAP)]  # due until a copy actually goes out
    f.sent(0, now=1.0)
    f.sent(2, now=1.0)
    assert f.due(1.0, limit=10) == []


def test_connection_lost_marks_only_copies_without_a_puback() -> None:
    f = flights()
    for seq in range(3):
        f.sent(seq, now=0.0)
    f.broker_acked(1, ok=True, now=0.1)
    assert f.connection_lost(now=1.0) == 2
    assert f.due(1.0, limit=10) == [(0, NO_PUBACK), (2, NO_PUBACK)]
    f.sent(0, now=1.5)
    f.sent(2, now=1.5)
    assert f.session_lost(now=2.0) == 3 and {r for _, r in f.due(2.0, 10)} == {SESSION_LOST}
    assert f.ingest_session_changed(now=3.0) == 0  # already due: they keep their reason
    for seq in (0, 1, 2):
        f.sent(seq, now=2.5)
    assert f.ingest_session_changed(now=3.0) == 3 and {r for _, r in f.due(3.0, 10)} == {INGEST_SESSION_LOST}


def test_the_probe_backs_off_with_jitter_up_to_the_cap_and_restarts_on_progress() -> None:
    f = flights(base=10.0, cap=80.0)
    f.sent(0, now=0.0)
    f.sent(1, now=0.0)
    waits = []
    now = 0.0
    for _ in range(8):
        wait = f.probe_at - now
        waits.append(wait)
        now = f.probe_at
        assert f.probe(now) is True
        assert f.due(now, limit=10) == [(1, PROBE)]  # the newest in flight
        f.sent(1, now)
    for step, wait in enumerate(waits):
        d = min(80.0, 10.0 * 2 ** step)
        assert d / 2 <= wait <= d, (step, wait)
    assert f.confirmed([1], now=now + 1) == 1  # 0 went out before 1's first copy: a gap
    assert f.probe_at - (now + 1) <= 10.0  # progress: the backoff starts again


def test_no_probe_while_something_is_already_due() -> None:
    f = flights()
    f.sent(0, now=0.0)
    f.connection_lost(now=1.0)
    assert f.probe(now=100.0) is False
    assert f.due(100.0, limit=10) == [(0, NO_PUBACK)]


def test_a_refused_copy_waits_the_undithered_delay_of_its_copy_number() -> None:
    f = flights(base=10.0)
    f.sent(0, now=0.0)
    f.broker_acked(0, ok=False, now=0.0)
    assert f.due(9.9, limit=10) == [] and f.next_due == 10.0
    assert f.due(10.0, limit=10) == [(0, REFUSED)]
    f.sent(0, now=10.0)
    f.broker_acked(0, ok=False, now=10.0)
    assert f.next_due == 30.0  # the second copy: twice the wait


def test_popped_readings_are_forgotten_and_the_limit_is_kept() -> None:
    f = flights()
    for seq in range(5):
        f.sent(seq, now=0.0)
    f.pop(2)
    assert 2 not in f and len(f) == 4
    f.session_lost(now=1.0)
    assert [s for s, _ in f.due(1.0, limit=2)] == [0, 1]
    assert [s for s, _ in f.due(1.0, limit=10)] == [0, 1, 3, 4]
    for seq in (0, 1, 3, 4):
        f.sent(seq, now=1.0)
    assert f.due(1.0, limit=10) == [] and f.next_due == math.inf


def test_delays_must_make_sense() -> None:
    with pytest.raises(ValueError, match="0 < base <= cap"):
        InFlight(probe_base=10.0, probe_cap=5.0, rng=random.Random(0))
