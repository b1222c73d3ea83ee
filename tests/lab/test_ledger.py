"""The ledger on hand-made sets: every term, and the identity."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lab.checker import seq_ranges
from lab.report.ledger import build_ledger, device_ledger


def test_each_term_from_its_own_source() -> None:
    led = device_ledger(10, stored={0, 1, 2, 3}, buffered={3, 4, 5},
                        evicted={5: "x", 6: "outbox-full:drop-oldest"},
                        duplicates=2)
    assert (led.generated, led.stored, led.buffered, led.evicted, led.lost) == (10, 4, 2, 1, 3)
    assert led.lost_seqs == (7, 8, 9)
    assert led.evicted_by_reason == {"outbox-full:drop-oldest": 1}
    assert led.duplicates == 2


def test_stored_but_never_generated_is_unexpected_not_counted() -> None:
    led = device_ledger(2, stored={0, 1, 5}, buffered=set(), evicted={})
    assert led.stored == 2 and led.unexpected == 1 and led.lost == 0


def test_totals_and_devices_missing_from_one_source() -> None:
    ledger = build_ledger({"a": 3, "b": 2}, {"a": {0, 1}, "c": {0}}, {"b": {0, 1}}, {}, {"a": 1})
    assert ledger.totals == {"generated": 5, "stored": 2, "duplicates": 1, "buffered": 2, "evicted": 0,
                             "lost": 1}
    assert ledger.devices["c"].unexpected == 1
    assert ledger.balanced()


@given(st.integers(0, 60), st.sets(st.integers(0, 80)), st.sets(st.integers(0, 80)),
       st.dictionaries(st.integers(0, 80), st.sampled_from(["r1", "r2"])))
def test_identity_always_holds(gen: int, s: set[int], b: set[int], e: dict[int, str]) -> None:
    led = device_ledger(gen, s, b, e)
    assert led.generated == led.stored + led.buffered + led.evicted + led.lost
    assert min(led.stored, led.buffered, led.evicted, led.lost) >= 0


def test_seq_ranges() -> None:
    assert seq_ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]
    assert seq_ranges([]) == []
