"""A device with the catalogue's signal: lead-off flagged on the wire, ground truth in the
history, and the same samples at the same times after a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from devices.catalogue import fleet_profiles, load_catalogue, parse_episode, parse_mix
from devices.device import Device, DeviceConfig
from devices.ecg_source import EcgStream, make_source
from devices.fleet import ecg_cache_dir
from devices.history import HistoryFile
from devices.outbox import Outbox
from devices.profile import PatientProfile
from ecgcore.clock import ManualClock
from ecgcore.modes import Delivery
from tests.devices.test_device import FakePublisher
from wire import FLAG_BACKLOG, decode_reading, encode_reading
from wire.reading import FLAG_LEAD_OFF

FS = 250
T0 = 1_796_045_840.0
DEV = "hc-0007"


def profile() -> PatientProfile:
    cat = load_catalogue()
    episodes = [parse_episode(f"lead-off@{T0 + 5:.0f}+3s", cat),
                parse_episode(f"af-episode@{T0 + 12:.0f}+20s", cat)]
    return fleet_profiles(1, 4, mix=parse_mix("pvc", cat), episodes=episodes, catalogue=cat)[0]


def run(tmp: Path, seconds: int, *, start: float = T0) -> tuple[FakePublisher, list[dict[str, Any]]]:
    """One device booted at `start`, recording `seconds` of 1-s chunks."""
    tmp.mkdir(parents=True, exist_ok=True)
    clock = ManualClock(start=start)
    box = Outbox(tmp / "outbox.sqlite", capacity=1000)
    history = HistoryFile(tmp / "devices.jsonl")
    p = profile()
    stream = EcgStream.for_profile(p, make_source("ecgsyn", FS, 0, ecg_cache_dir()), since=T0)
    pub = FakePublisher()
    config = DeviceConfig(delivery=Delivery.BROKER_ACK, chunk_seconds=1.0, sample_rate=FS)
    device = Device(DEV, p, stream, box, pub, clock, config, history=history)
    box.commit()
    device.on_connected()
    for _ in range(seconds):
        clock.advance(1.0)
        device.generate()
        box.commit()
        device.pump()
    history.close()
    box.close()
    lines = [json.loads(x) for x in (tmp / "devices.jsonl").read_text().splitlines()]
    return pub, lines


def test_lead_off_is_flagged_and_flat_or_saturated(tmp_path: Path) -> None:
    pub, _ = run(tmp_path, 12)
    readings = [r for _, r, _, _ in pub.sent]
    flagged = [r.captured_at - T0 for r in readings if r.flags & FLAG_LEAD_OFF]
    assert flagged == [5.0, 6.0, 7.0]  # the chunks that touch [T0+5, T0+8)
    stretch = np.concatenate([r.samples for r in readings if 5.0 <= r.captured_at - T0 < 8.0])
    assert np.all(stretch == 0) or np.all(stretch == 32767)
    assert np.abs(readings[0].samples).max() > 100  # the others carry an ECG
    # a backlog copy keeps the flag
    again = decode_reading(encode_reading(readings[5], flags=readings[5].flags | FLAG_BACKLOG))
    assert again.flags & FLAG_LEAD_OFF and again.backlog


def test_truth_lines_are_written_once_when_first_produced(tmp_path: Path) -> None:
    _, lines = run(tmp_path, 40)
    truth = [e for e in lines if e["ev"] == "truth"]
    assert [(e["kind"], e["label"], e["start"], e["end"], e["episode"]) for e in truth] == [
        ("rhythm", "pvc", T0, None, False),
        ("artifact", "lead-off", T0 + 5, T0 + 8, True),
        ("rhythm", "af", T0 + 12, T0 + 32, True),
    ]
    assert all(list(e)[:8] == ["t", "ev", "dev", "kind", "label", "start", "end", "episode"]
               for e in truth)
    first_generated = next(i for i, e in enumerate(lines) if e["ev"] == "generated")
    assert lines.index(truth[0]) < first_generated  # before the reading that holds it
    af_line = lines.index(truth[2])
    assert lines[af_line + 1]["ev"] == "generated" and lines[af_line + 1]["cap"] == T0 + 12


def test_a_restart_gives_the_same_samples_at_the_same_times(tmp_path: Path) -> None:
    first, _ = run(tmp_path / "a", 20)
    # booted 3.4 s later (a new process, new objects): its chunks start elsewhere
    later, lines = run(tmp_path / "b", 12, start=T0 + 3.4)
    by_time = {round((r.captured_at - T0) * FS): r.samples for _, r, _, _ in first.sent}
    whole = np.concatenate([by_time[k] for k in sorted(by_time)])
    for _, r, _, _ in later.sent:
        n = round((r.captured_at - T0) * FS)
        assert np.array_equal(r.samples, whole[n:n + r.samples.size])
    assert lines[1]["ev"] == "truth" and lines[1]["start"] == T0  # the same baseline key
