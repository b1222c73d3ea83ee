"""Backlog pacing, the reconnect policies and patient cohorts: the thundering-herd fixes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from devices.errors import ProfileError
from devices.mqtt_adapter import FixedRetry, JitterBackoff
from devices.profile import Cohort, fleet_profiles
from tests.devices.test_device import make_rig


def test_a_paced_backlog_goes_out_at_the_pace_and_no_faster(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "fire-and-forget", window=50, backlog_pace=4.0)
    rig.tick(40.0)  # forty readings while offline
    rig.device.on_connected()
    rig.tick(0.0)  # a full bucket: one second's worth
    assert rig.pub.seqs() == [0, 1, 2, 3]
    rig.tick(0.1)  # 0.4 of a token: nothing
    assert len(rig.pub.sent) == 4
    for _ in range(10):  # five more simulated seconds (ten readings were generated meanwhile)
        rig.tick(0.5)
    assert len(rig.pub.sent) == 4 + 20  # exactly 4/s, nothing faster
    assert all(r.backlog for _, r, _, _ in rig.pub.sent)
    assert rig.pub.seqs() == list(range(24))  # still oldest first


def test_the_pace_holds_when_the_fleet_ticks_seconds_apart(tmp_path: Path) -> None:
    # at 36x the fleet's 0.1-s real tick is 3.6 simulated seconds: 0.75/s must still be 0.75/s
    rig = make_rig(tmp_path, "fire-and-forget", window=50, backlog_pace=0.75)
    rig.tick(200.0)
    rig.device.on_connected()
    rig.tick(0.0)
    sent0 = len(rig.pub.sent)
    for _ in range(20):
        rig.tick(3.6)
    assert len(rig.pub.sent) - sent0 == pytest.approx(0.75 * 72, abs=1.5)
    assert all(r.backlog for _, r, _, _ in rig.pub.sent)


def test_an_unpaced_backlog_goes_out_as_fast_as_the_window_allows(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "fire-and-forget", window=50)
    rig.tick(40.0)
    rig.device.on_connected()
    rig.tick(0.0)
    assert len(rig.pub.sent) == 40


def test_a_paced_device_catches_up_and_goes_live(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "fire-and-forget", window=50, backlog_pace=3.0)
    rig.tick(20.0)
    rig.device.on_connected()
    for _ in range(200):  # 3 sent and 1 recorded per second: 20 drain in about 10 s
        rig.tick(0.1)
    last = rig.pub.sent[-1][1]
    assert not last.backlog, "once the backlog is gone, readings go out live again"
    assert rig.buffered() == set()
    assert rig.pub.seqs() == list(range(len(rig.pub.sent)))


def test_re_sends_count_against_the_pace(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "end-to-end", window=50, backlog_pace=2.0, ack_timeout=100.0)
    rig.tick(10.0)
    rig.device.on_connected(session_present=True)
    for _ in range(3):
        rig.tick(1.0)  # 2/s: six backlog readings
    assert rig.pub.seqs() == [0, 1, 2, 3, 4, 5]
    rig.device.on_ack([(5, 5)])  # 0..4 went out before 5: gaps, due at once
    for _ in range(4):
        rig.tick(0.5)
    # 2/s in all: the five re-sends take the whole pace, so nothing newer goes out until done
    assert rig.pub.seqs()[6:] == [0, 1, 2, 3]
    rig.tick(1.0)
    assert rig.pub.seqs()[10:] == [4]  # the second token waits for a batch of two
    rig.tick(1.0)
    assert rig.pub.seqs()[11:13] == [6, 7]


def test_wake_at_says_when_the_bucket_allows_the_next_batch(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, "fire-and-forget", window=50, backlog_pace=2.0)
    rig.tick(10.0)
    rig.device.on_connected()
    rig.tick(0.0)  # spends the bucket
    now = rig.clock.monotonic()
    assert now < rig.device.wake_at() <= now + 1.0 + 1e-9
    assert rig.device.wake_at() != -math.inf


def test_backlog_pace_must_be_positive() -> None:
    from devices.device import DeviceConfig
    from devices.errors import ConfigError
    from ecgcore.modes import Delivery

    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ConfigError, match="backlog pace"):
            DeviceConfig(delivery=Delivery.END_TO_END, backlog_pace=bad)


def test_fixed_retry_is_the_same_for_everyone_and_backoff_is_not() -> None:
    rng = np.random.default_rng(1)
    assert {FixedRetry().delay(n, rng) for n in range(20)} == {1.0}
    late = [JitterBackoff().delay(12, rng) for _ in range(200)]
    assert min(late) >= 15.0 and max(late) <= 30.0 and np.std(late) > 2.0


def test_cohorts_set_heart_rate_ranges_and_strips_and_keep_the_rest() -> None:
    cohorts = (Cohort.parse("elderly:30:hr=55-65:strips=4"), Cohort.parse("athletes:20:hr=40-48"))
    base = fleet_profiles(50, seed=3)
    fleet = fleet_profiles(50, seed=3, cohorts=cohorts)
    assert fleet == fleet_profiles(50, seed=3, cohorts=cohorts)
    assert all(55.0 <= p.hr_bpm <= 65.0 for p in fleet[:30])
    assert len({p.hr_bpm for p in fleet[:30]}) > 10  # any rate within the range, no grid
    assert all(40.0 <= p.hr_bpm <= 48.0 for p in fleet[30:])
    assert [p.strips_per_day for p in fleet] == [4] * 30 + [None] * 20
    assert [p.cohort for p in fleet] == ["elderly"] * 30 + ["athletes"] * 20
    assert [(p.seed, p.noise, p.hrv) for p in fleet] == [(p.seed, p.noise, p.hrv) for p in base]


@pytest.mark.parametrize(("spec", "message"), [
    ("a", "NAME:COUNT"),
    ("a:x", "not a whole number"),
    ("a:0", "at least 1 device"),
    ("a:3:hr=80-60", "range within 30..220"),
    ("a:3:hr=fast", "hr=LO-HI, strips=N or profile=ENTRY"),
    ("a:3:strips=0", "at least 1"),
    ("a:3:color=red", "hr=LO-HI, strips=N or profile=ENTRY"),
    ("a b:3", "letters, digits"),
])
def test_bad_cohort_specs_are_refused_clearly(spec: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        Cohort.parse(spec)


def test_cohorts_must_add_up_to_the_fleet() -> None:
    with pytest.raises(ProfileError, match="3 devices in all, but the fleet has 4"):
        fleet_profiles(4, 0, (Cohort("a", 1), Cohort("b", 2)))
    with pytest.raises(ProfileError, match="same name"):
        fleet_profiles(2, 0, (Cohort("a", 1), Cohort("a", 1)))
