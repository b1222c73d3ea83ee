"""Every catalogue rhythm, checked by an independent detector (wfdb's XQRS) and the ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from devices.catalogue import fleet_profiles, load_catalogue, parse_episode, parse_mix
from devices.ecg_source import EcgStream, PatientSource, make_source, truth_beats
from devices.fleet import ecg_cache_dir
from devices.profile import PatientProfile
from devices.profiles_file import profile_entry
from devices.rhythm import BLOCK_S, BeatModel
from tests.devices.xqrs import xqrs_peaks

FS = 250
T0 = 1_796_045_840.0
# RR irregularity: RMSSD / mean RR. Sinus rhythm (HRV 1-3 bpm) stays below 0.05; AF
# (RR coefficient of variation 0.15-0.25, i.i.d.) lies above 0.15. The threshold between:
AF_IRREGULARITY = 0.10
JITTER_S = 2 / FS  # an R peak found within a sample either way


@pytest.fixture(scope="module")
def source() -> PatientSource:
    src = make_source("ecgsyn", FS, 0, ecg_cache_dir())
    assert isinstance(src, PatientSource)
    return src


def entry_of(p: PatientProfile) -> dict[str, object]:
    return profile_entry(p, recording="continuous", sample_rate_hz=FS, chunk_seconds=1.0,
                         strip_seconds=None, strips_per_day=None)


def detected(source: PatientSource, p: PatientProfile, seconds: float, t0: float = T0) -> np.ndarray:
    """XQRS's beat times (simulated Unix s) over `seconds` of the device's signal from t0."""
    x = EcgStream.for_profile(p, source).read(round(t0 * FS), round(seconds * FS)).samples
    return t0 + xqrs_peaks(x, FS, hr_max=260) / FS


def irregularity(beats: np.ndarray) -> float:
    rr = np.diff(beats)
    return float(np.sqrt(np.mean(np.diff(rr) ** 2)) / np.mean(rr))


def one_of(name: str, i: int = 0, seed: int = 11) -> PatientProfile:
    cat = load_catalogue()
    return fleet_profiles(i + 1, seed, mix=parse_mix(name, cat), catalogue=cat)[i]


@pytest.mark.parametrize("hr", [30.0, 45.0, 60.0, 90.0, 130.0, 180.0, 220.0])
def test_sinus_heart_rate_within_one_bpm_of_the_setting(source: PatientSource, hr: float) -> None:
    p = PatientProfile(hr, 1.0, 0.01, seed=int(hr) * 7)
    beats = detected(source, p, 150.0)
    beats = beats[beats > T0 + 10]  # XQRS learns for the first seconds
    measured = 60.0 / float(np.mean(np.diff(beats)))
    assert abs(measured - hr) <= 1.0, measured
    assert irregularity(beats) < AF_IRREGULARITY


@pytest.mark.parametrize("name", ["sinus", "brady", "tachy", "af"])
def test_af_is_irregular_and_sinus_rhythms_are_not(source: PatientSource, name: str) -> None:
    for i in range(2):
        p = one_of(name, i)
        beats = detected(source, p, 120.0)
        beats = beats[beats > T0 + 10]
        assert abs(60.0 / float(np.mean(np.diff(beats))) - p.hr_bpm) <= (4.0 if name == "af" else 1.0)
        if name == "af":
            assert irregularity(beats) > AF_IRREGULARITY + 0.05
        else:
            assert irregularity(beats) < AF_IRREGULARITY - 0.05


def premature(beats: np.ndarray) -> np.ndarray:
    """Beats that come early and are followed by a long pause (from the RR series alone)."""
    rr = np.diff(beats)
    med = np.median(rr)
    return np.flatnonzero((rr[:-1] < 0.85 * med) & (rr[1:] > 1.15 * med)) + 1


def test_the_detected_pvc_rate_is_the_setting(source: PatientSource) -> None:
    p = one_of("pvc")
    beats = detected(source, p, 1200.0)
    beats = beats[beats > T0 + 10]
    rate = premature(beats).size / beats.size
    assert p.rhythm.pvc_rate == 0.1
    assert abs(rate - 0.1) <= 0.025, rate  # about 3 binomial standard deviations at ~1400 beats
    # compensatory pause: coupling interval + the next one = 2 normal RR
    rr = np.diff(beats)
    idx = premature(beats)
    idx = idx[(idx >= 2) & (idx < rr.size)]
    normal = np.median(rr)
    assert np.median(np.abs(rr[idx - 1] + rr[idx] - 2 * normal)) < 0.08 * normal


def test_bigeminy_alternates_short_and_long(source: PatientSource) -> None:
    p = one_of("bigeminy")
    beats = detected(source, p, 120.0)
    beats = beats[beats > T0 + 10]
    rr = np.diff(beats)
    signs = np.sign(np.diff(rr))
    assert np.mean(signs[1:] == -signs[:-1]) > 0.97  # short, long, short, long
    pairs = rr[: rr.size // 2 * 2].reshape(-1, 2).sum(axis=1)  # a PVC and its pause: 2 RR
    assert float(np.mean(pairs)) == pytest.approx(120.0 / p.hr_bpm, rel=0.03)


def test_the_rr_series_never_repeats_over_an_hour() -> None:
    p = PatientProfile(70.0, 2.0, 0.01, seed=5)
    beats = np.array([t for t, _ in truth_beats(entry_of(p), T0, T0 + 3600.0)])
    rr = np.diff(beats)
    assert rr.size > 4000
    closest = min(float(np.mean(np.abs(rr[:-lag] - rr[lag:]))) for lag in range(2, 2001))
    assert closest > 2 * JITTER_S, closest
    # the same check catches a loop: today's 20-s banks repeated their RR every 20 s
    loop = np.tile(rr[: rr.size // 200], 200)
    assert min(float(np.mean(np.abs(loop[:-lag] - loop[lag:]))) for lag in range(2, 2001)) < 1e-9
    # and two devices with identical settings beat differently
    other = np.diff([t for t, _ in truth_beats(entry_of(PatientProfile(70.0, 2.0, 0.01, 6)),
                                               T0, T0 + 600.0)])
    n = min(other.size, 500)
    assert float(np.mean(np.abs(other[:n] - rr[:n]))) > 2 * JITTER_S


def test_truth_beats_are_where_xqrs_finds_them(source: PatientSource) -> None:
    p = one_of("sinus", 3)
    found = detected(source, p, 120.0)
    truth = np.array([t for t, s in truth_beats(entry_of(p), T0 + 5, T0 + 115) if s == "N"])
    found = found[(found > T0 + 5) & (found < T0 + 115)]
    assert truth.size > 90
    gap = np.abs(found[:, None] - truth[None, :])
    assert np.all(gap.min(axis=1) < 0.05) and np.all(gap.min(axis=0) < 0.05)
    assert found.size == truth.size


def test_truth_beats_are_the_same_in_any_window_and_across_blocks() -> None:
    p = one_of("pvc", 1)
    whole = truth_beats(entry_of(p), T0, T0 + 3 * BLOCK_S)
    parts = [b for k in range(30) for b in truth_beats(
        entry_of(p), T0 + k * BLOCK_S / 10, T0 + (k + 1) * BLOCK_S / 10)]
    assert whole == parts
    assert {s for _, s in whole} == {"N", "V"}
    rr = np.diff([t for t, _ in whole])
    assert rr.min() > 0.25  # no seam where blocks meet


def test_episodes_take_over_their_window(source: PatientSource) -> None:
    cat = load_catalogue()
    specs = [parse_episode(f"vt-run@{T0 + 30:.0f}+10s", cat),
             parse_episode(f"pause@{T0 + 60:.0f}+6s", cat),
             parse_episode(f"af-episode@{T0 + 100:.0f}+2m", cat)]
    p = fleet_profiles(1, 3, episodes=specs, catalogue=cat)[0]
    beats = truth_beats(entry_of(p), T0, T0 + 260)
    vt = [s for t, s in beats if T0 + 30 <= t < T0 + 40]
    assert len(vt) >= 20 and set(vt) == {"V"}  # 150-200 bpm, ventricular
    assert not [t for t, _ in beats if T0 + 60 <= t < T0 + 66]  # the pause: not a beat
    af = np.array([t for t, _ in beats if T0 + 100 <= t < T0 + 220])
    assert irregularity(af) > AF_IRREGULARITY + 0.05
    sinus = np.array([t for t, _ in beats if t >= T0 + 222])
    assert irregularity(sinus) < AF_IRREGULARITY
    found = detected(source, p, 90.0)
    assert not np.any((found > T0 + 61) & (found < T0 + 65))  # XQRS sees the pause too


def test_random_episodes_come_from_the_seed() -> None:
    p = one_of("paroxysmal-af", 0, seed=2)
    days = BeatModel(p).episodes(T0, T0 + 30 * 86400)
    assert 30 <= len(days) <= 90  # about 2 a day
    assert all(e.label == "af" and 600 <= e.end - e.start <= 2400 for e in days)
    assert days == BeatModel(one_of("paroxysmal-af", 0, seed=2)).episodes(T0, T0 + 30 * 86400)
    assert days != BeatModel(one_of("paroxysmal-af", 0, seed=3)).episodes(T0, T0 + 30 * 86400)
