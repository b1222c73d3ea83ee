"""Strip mode: the schedule and the device's strips, with a manual clock (no broker)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from devices.device import Device, DeviceConfig
from devices.ecg_source import EcgStream, SyntheticSource
from devices.errors import ConfigError
from devices.fleet import FleetConfig
from devices.outbox import Outbox
from devices.profile import PatientProfile
from devices.schedule import DAY_SECONDS, StripSchedule
from ecgcore.clock import ManualClock
from ecgcore.modes import Delivery
from tests.devices.test_device import FakePublisher
from wire import Reading, decode_reading

PROFILE = PatientProfile(hr_bpm=72, hrv=1.0, noise=0.01, seed=42)
DAY0 = 19_700 * DAY_SECONDS  # a UTC midnight
T0 = DAY0 + 3_600.0  # 01:00


# --- the schedule ----------------------------------------------------------------------


def test_the_schedule_is_a_pure_function_of_the_seed() -> None:
    a = StripSchedule(seed=7, strips_per_day=3, strip_seconds=30)
    b = StripSchedule(seed=7, strips_per_day=3, strip_seconds=30)
    starts = a.starts_between(DAY0, DAY0 + 3 * DAY_SECONDS)
    assert starts == b.starts_between(DAY0, DAY0 + 3 * DAY_SECONDS)
    # asked in another order (backwards), slot by slot: the same times
    day = int(DAY0 // DAY_SECONDS)
    again = [b.start(day + d, s) for d in reversed(range(3)) for s in reversed(range(3))]
    assert sorted(again) == starts
    other = StripSchedule(seed=8, strips_per_day=3, strip_seconds=30)
    assert other.starts_between(DAY0, DAY0 + 3 * DAY_SECONDS) != starts
    assert all(round(s * 1000) == s * 1000 for s in starts)  # whole milliseconds


@pytest.mark.parametrize(("per_day", "seconds"), [(1, 30.0), (3, 30.0), (24, 30.0),
                                                   (48, 60.0), (7, 30.0), (2880, 30.0)])
def test_exactly_n_strips_per_day_one_per_slot_never_overlapping(per_day: int,
                                                                  seconds: float) -> None:
    for seed in range(5):
        sched = StripSchedule(seed=seed, strips_per_day=per_day, strip_seconds=seconds)
        for d in range(3):
            day_start = DAY0 + d * DAY_SECONDS
            starts = sched.starts_between(day_start, day_start + DAY_SECONDS)
            assert len(starts) == per_day
            for j, s in enumerate(starts):
                slot_start = day_start + j * sched.slot_seconds
                assert slot_start <= s and s + seconds <= slot_start + sched.slot_seconds + 1e-6
            assert all(b - a >= seconds for a, b in itertools.pairwise(starts))


def test_offsets_are_spread_over_the_slot() -> None:
    offsets = []
    for seed in range(200):
        sched = StripSchedule(seed=seed, strips_per_day=3)
        offsets.append(sched.start(int(DAY0 // DAY_SECONDS), 0) - DAY0)
    span = DAY_SECONDS / 3 - 30
    assert min(offsets) < 0.1 * span and max(offsets) > 0.9 * span
    assert len(set(offsets)) == 200


def test_first_at_or_after_skips_a_strip_that_already_started() -> None:
    sched = StripSchedule(seed=3, strips_per_day=3)
    day = int(DAY0 // DAY_SECONDS)
    s0 = sched.start(day, 0)
    assert sched.first_at_or_after(s0) == (day, 0)
    assert sched.first_at_or_after(s0 + 0.001) == (day, 1)
    assert sched.first_at_or_after(DAY0 + DAY_SECONDS - 0.001) == (day + 1, 0)


@pytest.mark.parametrize("kw", [{"strips_per_day": 0}, {"strip_seconds": 0},
                                {"strip_seconds": float("nan")},
                                {"strips_per_day": 3000, "strip_seconds": 30}])
def test_bad_schedules_are_config_errors(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        StripSchedule(seed=1, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [
    {"recording": "sometimes"}, {"strip_chunks": 0}, {"strip_chunks": 70_000},
    {"strip_seconds": 30, "sample_rate": 2000, "strip_chunks": 1},  # 60,000 samples
    {"strip_seconds": 0.01, "sample_rate": 250, "strip_chunks": 5},  # 2 samples, 5 chunks
    {"strips_per_day": 0},
])
def test_bad_strip_settings_are_config_errors(tmp_path: Path, kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FleetConfig(state_dir=tmp_path, host="127.0.0.1", port=1, devices=1,
                    delivery="broker-ack", **{"recording": "strip", **kw})  # type: ignore[arg-type]
    ok = DeviceConfig(delivery=Delivery.BROKER_ACK, recording="strip", strip_seconds=30,
                      sample_rate=2000, strip_chunks=2)
    assert ok.samples_per_strip == 60_000


# --- the device in strip mode -----------------------------------------------------------


def strip_device(tmp_path: Path, clock: ManualClock, *, outbox: Outbox | None = None,
                 profile: PatientProfile = PROFILE, device_id: str = "hc-0001",
                 **kw: object) -> tuple[Device, Outbox, FakePublisher]:
    box = outbox or Outbox(tmp_path / "outbox.sqlite", capacity=100_000)
    settings: dict[str, object] = {"strip_seconds": 30.0, "strips_per_day": 3,
                                   "sample_rate": 250, **kw}
    config = DeviceConfig(delivery=Delivery.FIRE_AND_FORGET, recording="strip",
                          **settings)  # type: ignore[arg-type]
    pub = FakePublisher()
    device = Device(device_id, profile,
                    EcgStream.for_profile(profile, SyntheticSource(config.sample_rate, 0)),
                    box, pub, clock, config)
    box.commit()
    device.on_connected()
    return device, box, pub


def run(device: Device, box: Outbox, clock: ManualClock, seconds: float, step: float) -> None:
    """Tick like the fleet, `step` simulated seconds apart."""
    for _ in range(math.ceil(seconds / step)):
        clock.advance(step)
        device.generate()
        box.commit()
        device.pump()


def sent(pub: FakePublisher) -> list[Reading]:
    return [r for _, r, _, _ in pub.sent]


def test_three_strips_a_day_at_the_scheduled_times(tmp_path: Path) -> None:
    clock = ManualClock(start=T0)
    device, box, pub = strip_device(tmp_path, clock)
    sched = StripSchedule(PROFILE.seed, 3, 30.0)
    assert device.next_strip_start == sched.starts_between(T0, T0 + DAY_SECONDS)[0]
    run(device, box, clock, 3 * DAY_SECONDS, 600.0)
    readings = sent(pub)
    expected = [s for s in sched.starts_between(T0, clock.now()) if s + 30 <= clock.now()]
    assert [r.captured_at for r in readings] == pytest.approx(expected, abs=1e-6)
    assert 8 <= len(readings) <= 10  # from 01:00: day 0's and day 3's first strips may not count
    for day in range(1, 3):
        in_day = [r for r in readings if DAY0 + day * DAY_SECONDS <= r.captured_at
                  < DAY0 + (day + 1) * DAY_SECONDS]
        assert len(in_day) == 3
    for r in readings:  # one reading per strip: 30 s x 250 Hz, named by its strip
        assert r.samples.size == 7500 and r.sample_rate_hz == 250
        assert (r.strip_id, r.chunk, r.chunks) == (r.seq + 1, 0, 1)
    assert [r.seq for r in readings] == list(range(len(readings)))
    assert device.stats.strips == len(readings) and device.stats.skipped_strips == 0


def test_a_strip_is_generated_when_complete_and_the_device_sleeps_till_then(
        tmp_path: Path) -> None:
    clock = ManualClock(start=T0)
    device, box, _pub = strip_device(tmp_path, clock)
    start = device.next_strip_start
    assert start is not None
    due = device.next_due
    assert due == pytest.approx(clock.monotonic() + (start + 30 - clock.now()))
    assert device.wake_at() == due  # idle: nothing to do until the strip is complete
    clock.advance(due - clock.monotonic() - 0.01)
    assert device.generate() == 0
    clock.advance(0.01)
    assert device.generate() == 1
    assert device.next_strip_start is not None and device.next_strip_start > start
    assert device.wake_at() == -math.inf  # connected with an unsent row: tick at once
    box.commit()
    device.pump()
    assert device.wake_at() == device.next_due


@pytest.mark.parametrize(("chunks", "sizes"), [(4, [1875] * 4), (7, [1072] * 3 + [1071] * 4),
                                               (30, [250] * 30)])
def test_a_strip_in_chunks(tmp_path: Path, chunks: int, sizes: list[int]) -> None:
    clock = ManualClock(start=T0)
    device, box, pub = strip_device(tmp_path, clock, strip_chunks=chunks)
    run(device, box, clock, DAY_SECONDS, 900.0)
    readings = sent(pub)
    strips: dict[int, list[Reading]] = {}
    for r in readings:
        strips.setdefault(r.strip_id, []).append(r)
    assert len(strips) >= 2 and len(readings) == chunks * len(strips)
    sched = StripSchedule(PROFILE.seed, 3, 30.0)
    for strip_id, parts in strips.items():
        seqs = [r.seq for r in parts]
        assert seqs == list(range(seqs[0], seqs[0] + chunks))  # consecutive
        assert strip_id == seqs[0] + 1
        assert [r.chunk for r in parts] == list(range(chunks))
        assert all(r.chunks == chunks for r in parts)
        assert [r.samples.size for r in parts] == sizes
        start = parts[0].captured_at
        assert any(abs(start - s) < 1e-6 for s in sched.starts_between(T0, clock.now()))
        offsets = np.cumsum([0, *sizes[:-1]]) / 250
        assert [r.captured_at - start for r in parts] == pytest.approx(offsets, abs=2e-6)
    ids = list(strips)
    assert ids == sorted(ids)  # strip ids increase


def test_a_long_sleep_records_every_whole_strip(tmp_path: Path) -> None:
    """Under time compression one tick may cover many strips; the catch-up cap counts whole
    strips, so 24 strips x 30 chunks (720 readings, 12 x the 60 cap) all arrive."""
    clock = ManualClock(start=T0)
    device, box, _pub = strip_device(tmp_path, clock, strips_per_day=24, strip_chunks=30)
    clock.advance(DAY_SECONDS)
    assert device.generate() == 24 * 30
    assert device.stats.skipped_strips == 0 and device.stats.skipped_chunks == 0
    box.commit()
    rows = box.pending(device.device_id, limit=10_000)
    assert len(rows) == 720
    # an absurd sleep: only the newest max_catchup strips are kept, whole, without seqs for
    # the others
    clock.advance(100 * DAY_SECONDS)
    made = device.generate()
    assert made == 60 * 30 and device.stats.skipped_strips == 100 * 24 - 60
    box.commit()
    readings = [decode_reading(p) for _, p in box.pending(device.device_id, limit=100_000)]
    per_strip: dict[int, int] = {}
    for r in readings:
        per_strip[r.strip_id] = per_strip.get(r.strip_id, 0) + 1
    assert set(per_strip.values()) == {30}
    assert [r.seq for r in readings] == list(range(len(readings)))


def test_a_reboot_keeps_the_day_schedule_and_the_strip_ids_go_on(tmp_path: Path) -> None:
    clock = ManualClock(start=T0)
    device, box, pub = strip_device(tmp_path, clock, strips_per_day=24)
    run(device, box, clock, 5 * 3600, 300.0)
    first = sent(pub)
    box.close()
    clock2 = ManualClock(start=clock.now() + 3600)  # an hour off
    device2, box2, pub2 = strip_device(tmp_path, clock2, strips_per_day=24,
                                       outbox=Outbox(tmp_path / "outbox.sqlite"))
    assert device2.boot_epoch == 2
    run(device2, box2, clock2, 5 * 3600, 300.0)
    box2.close()
    second = [r for r in sent(pub2) if r.boot_epoch == 2]
    sched = StripSchedule(PROFILE.seed, 24, 30.0)
    all_starts = sched.starts_between(T0, clock2.now())
    for r in first + second:  # both boots follow one schedule
        assert any(abs(r.captured_at - s) < 1e-6 for s in all_starts)
    assert min(r.captured_at for r in second) >= clock.now() + 3600  # nothing from the gap
    ids = [r.strip_id for r in first + second]
    assert ids == sorted(set(ids)) and second[0].seq == first[-1].seq + 1


def test_two_runs_with_one_seed_record_the_same_strips(tmp_path: Path) -> None:
    out = []
    for run_dir in ("a", "b"):
        clock = ManualClock(start=T0)
        (tmp_path / run_dir).mkdir()
        device, box, pub = strip_device(tmp_path / run_dir, clock, strip_chunks=3)
        run(device, box, clock, DAY_SECONDS, 1000.0)
        out.append([(r.seq, r.captured_at, r.strip_id, r.chunk, r.samples.tobytes())
                    for r in sent(pub)])
        box.close()
    assert out[0] == out[1] and len(out[0]) >= 6
