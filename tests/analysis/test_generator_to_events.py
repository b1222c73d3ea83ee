"""The two halves of the clinical lab checked against each other: the patients the devices
generate (devices/ecg_source.py, the catalogue's rhythms and scheduled episodes) go through the
analysis stage, and each clinical episode of the ground truth raises its event once, near its
onset; a sinus patient raises nothing. Neither side's own synthetic signals are used here."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from analysis.model import Event
from devices.catalogue import fleet_profiles, load_catalogue, parse_episode
from devices.ecg_source import PatientSource
from devices.profile import Cohort
from tests.analysis.synth import FS, chunk
from tests.analysis.test_stage import feed

pytestmark = pytest.mark.slow  # a few device-hours of ECG through neurokit2

T0 = 1_796_000_000.0  # the episodes' times are absolute (simulated Unix seconds)
MINUTES = 12
# device 0: sinus with an AF episode and a pause; 1: bradycardia at 35 bpm; 2: tachycardia at
# 165 bpm; 3: plain sinus (no event at all); 4: sinus with a 30-s run of ventricular tachycardia;
# 5: sinus with 10 % PVCs, 6: bigeminy (neither is AF: their irregularity is premature beats)
COHORTS = [Cohort("episodes", 1, (70.0, 70.0), profile="sinus"),
           Cohort("brady", 1, (35.0, 35.0), profile="brady"),
           Cohort("tachy", 1, (165.0, 165.0), profile="tachy"),
           Cohort("calm", 1, (65.0, 65.0), profile="sinus"),
           Cohort("vt", 1, (70.0, 70.0), profile="sinus"),
           Cohort("pvc", 1, (72.0, 72.0), profile="pvc"),
           Cohort("bigeminy", 1, (70.0, 70.0), profile="bigeminy")]
AF_AT, AF_S = T0 + 120, 300.0
PAUSE_AT = T0 + 540
VT_AT, VT_S = T0 + 300, 30.0


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Event]]:
    cat = load_catalogue()
    episodes = [parse_episode(f"af-episode@{AF_AT}+{AF_S:g}s:devices=0-0", cat),
                parse_episode(f"pause@{PAUSE_AT}+6s:devices=0-0", cat),
                parse_episode(f"vt-run@{VT_AT}+{VT_S:g}s:devices=4-4", cat)]
    profiles = fleet_profiles(len(COHORTS), 11, cohorts=COHORTS, episodes=episodes, catalogue=cat)
    source = PatientSource(FS, 11)
    readings = []
    for i, profile in enumerate(profiles):
        mv, _ = source.model(profile).render(round(T0 * FS), MINUTES * 60 * FS)
        readings += [replace(r, rowid=i * 100_000 + r.rowid)
                     for r in chunk(f"hc-{i:04d}", np.asarray(mv, dtype=np.float64), FS, T0)]
    readings.sort(key=lambda r: (r.captured_at, r.device_id))
    batches = [readings[i : i + 40] for i in range(0, len(readings), 40)]
    db = tmp_path_factory.mktemp("gen") / "analysis.sqlite"
    feed(db, batches)
    from analysis import store_view

    out: dict[str, list[Event]] = {}
    for e in store_view.events(db):
        out.setdefault(e.device_id, []).append(e)
    return out


def kinds(evs: list[Event]) -> list[str]:
    return sorted(e.kind for e in evs)


def test_an_af_episode_and_a_pause_raise_one_event_each_near_their_onset(
        events: dict[str, list[Event]]) -> None:
    evs = events.get("hc-0000", [])
    assert kinds(evs) == ["af", "pause"], [(e.kind, e.onset - T0) for e in evs]
    af = next(e for e in evs if e.kind == "af")
    pause = next(e for e in evs if e.kind == "pause")
    assert abs(af.onset - AF_AT) <= 15, af.onset - AF_AT  # within a 32-RR window of the onset
    assert af.end is not None and abs(af.end - (AF_AT + AF_S)) <= 20, af.end - AF_AT - AF_S
    assert abs(pause.onset - PAUSE_AT) <= 2, pause.onset - PAUSE_AT


@pytest.mark.parametrize(("device", "kind"), [("hc-0001", "brady"), ("hc-0002", "tachy")])
def test_a_slow_or_fast_patient_raises_its_event_once(events: dict[str, list[Event]], device: str,
                                                      kind: str) -> None:
    evs = events.get(device, [])
    assert kinds(evs) == [kind], [(e.kind, e.onset - T0, e.end) for e in evs]
    assert evs[0].onset - T0 <= 30  # from the start of the record


@pytest.mark.parametrize("device", ["hc-0003", "hc-0005", "hc-0006"])
def test_sinus_with_or_without_premature_beats_raises_nothing_once_under_way(
        events: dict[str, list[Event]], device: str) -> None:
    evs = [e for e in events.get(device, []) if e.onset >= T0 + FIRST_SECONDS]
    assert evs == [], [(e.kind, e.onset - T0, e.end) for e in evs]


FIRST_SECONDS = 10.0  # a live record's first seconds, analysed before enough beats exist


def test_a_bigeminy_raises_nothing_from_its_first_reading(events: dict[str, list[Event]]) -> None:
    assert events.get("hc-0006", []) == []


def test_a_run_of_ventricular_tachycardia_raises_one_tachycardia(events: dict[str, list[Event]]) -> None:
    tachy = [e for e in events.get("hc-0004", []) if e.kind == "tachy"]
    assert len(tachy) == 1, [(e.kind, e.onset - T0, e.end) for e in events.get("hc-0004", [])]
    assert abs(tachy[0].onset - VT_AT) <= 5 and tachy[0].end is not None
    assert abs(tachy[0].end - (VT_AT + VT_S)) <= 8, tachy[0].end - VT_AT - VT_S


def test_a_run_of_ventricular_tachycardia_raises_nothing_else(events: dict[str, list[Event]]) -> None:
    # its wide beats beside sinus ones are clean: no "unreadable" at the run's edges
    # (analysis/detect.py matches each morphology against its own average)
    assert kinds(events.get("hc-0004", [])) == ["tachy"], [(e.kind, e.onset - T0) for e in events["hc-0004"]]
