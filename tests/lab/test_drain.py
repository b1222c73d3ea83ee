"""lab/scenario/drain.py: when the drain phase ends, on hand-fed levels and a manual clock."""

from __future__ import annotations

from ecgcore.clock import ManualClock
from lab.scenario.drain import DELIVERED, OUT_OF_TIME, STALLED, DrainLimits, DrainRule


def feed(rule: DrainRule, clock: ManualClock, levels: list[tuple[int, int]], every_s: float) -> str | None:
    """Observe each level `every_s` apart, four polls per step; the first verdict, or None."""
    for stored, buffered in levels:
        for _ in range(4):
            why = rule.observe(stored, buffered)
            if why is not None:
                return why
            clock.advance(every_s / 4)
    return None


def test_a_slow_but_steady_drain_is_waited_for() -> None:
    """One reading every 20 s (an end-to-end probe's pace): the old "nothing moved for 10 s"
    rule stopped after one step; this one waits for all 12."""
    clock = ManualClock(start=0.0)
    rule = DrainRule(clock)
    levels = [(100 + i, 12 - i) for i in range(13)]
    assert feed(rule, clock, levels, every_s=20.0) is None
    assert rule.observe(112, 0) is None  # just delivered: quiet for a while first
    clock.advance(45.0)
    assert rule.observe(112, 0) == DELIVERED and rule.elapsed() > 240


def test_a_drain_that_stopped_moving_ends_as_stalled() -> None:
    clock = ManualClock(start=0.0)
    rule = DrainRule(clock)
    assert feed(rule, clock, [(10, 5), (11, 4), (12, 3)], every_s=1.0) is None
    clock.advance(26.0)  # the last change was 27 s ago
    assert rule.observe(12, 3) is None
    clock.advance(4.0)  # 31 s without a change
    assert rule.observe(12, 3) == STALLED


def test_a_drain_too_slow_for_its_own_projection_runs_out_of_time() -> None:
    clock = ManualClock(start=0.0)
    rule = DrainRule(clock, DrainLimits(min_limit_s=10.0, max_limit_s=60.0))
    # 1 reading a second with 10,000 left: projected far beyond the 60-s cap
    why = feed(rule, clock, [(i, 10_000 - i) for i in range(100)], every_s=1.0)
    assert why == OUT_OF_TIME and 60.0 <= rule.elapsed() <= 61.0


def test_an_empty_backlog_is_delivered_after_the_quiet_time() -> None:
    clock = ManualClock(start=0.0)
    rule = DrainRule(clock)
    assert rule.observe(50, 0) is None
    clock.advance(2.0)
    assert rule.observe(50, 0) == DELIVERED


def test_empty_outboxes_are_not_delivered_while_the_broker_holds_readings() -> None:
    """broker-ack: the devices let go of a reading at its PUBACK, so the backlog of a slow or
    still-reconnecting ingest sits in the broker with the outboxes empty and nothing moving
    for a while. That is not delivered; the broker's queue draining to zero is."""
    clock = ManualClock(start=0.0)
    rule = DrainRule(clock)
    assert rule.observe(50, 0, 300) is None
    clock.advance(10.0)  # ingest still reconnecting: nothing moves for 10 s
    assert rule.observe(50, 0, 300) is None
    clock.advance(1.0)
    assert rule.observe(350, 0, 0) is None  # the queue reached ingest ...
    clock.advance(25.0)
    assert rule.observe(350, 0, 0) == DELIVERED  # ... and stayed empty (2 x the 11-s pause)
    still = ManualClock(start=0.0)
    stuck = DrainRule(still)
    assert stuck.observe(50, 0, 300) is None
    still.advance(31.0)  # ingest never came back for it
    assert stuck.observe(50, 0, 300) == STALLED


def test_an_unknown_broker_level_does_not_hold_the_drain() -> None:
    clock = ManualClock(start=0.0)
    rule = DrainRule(clock)
    assert rule.observe(50, 0, None) is None
    clock.advance(2.0)
    assert rule.observe(50, 0, None) == DELIVERED
