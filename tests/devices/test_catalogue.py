"""devices/catalogue.py and devices/profiles.toml: entries, mixes, episodes, user files."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from devices.catalogue import (
    duration_s,
    fleet_profiles,
    load_catalogue,
    parse_episode,
    parse_mix,
)
from devices.errors import ProfileError
from devices.profile import Cohort
from devices.profile import fleet_profiles as draw_profiles
from devices.profiles_file import profile_entry, profile_from_entry


def test_the_shipped_catalogue_has_every_rhythm_and_episode() -> None:
    cat = load_catalogue()
    assert {"sinus", "brady", "tachy", "af", "pvc", "bigeminy"} <= set(cat.rhythms())
    assert {"af-episode", "vt-run", "pause", "lead-off", "motion", "emg"} <= set(cat.episodes())
    assert cat.get("af").rhythm == "af" and cat.get("bigeminy").pvc_pattern == "bigeminy"
    assert cat.get("pause", episode=True).duration_s == 6.0
    assert cat.get("af-episode", episode=True).duration_s == 1200.0
    assert all(e.description for e in cat.entries.values())


def test_a_user_file_adds_and_replaces_entries(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[sinus]\ndescription = "slow sinus"\nhr = [50, 55]\n\n'
                    '[svt-run]\ndescription = "fast"\nepisode = true\nrhythm = "vt"\nhr = 210\n')
    cat = load_catalogue(path)
    assert cat.get("sinus").hr == (50.0, 55.0) and cat.get("sinus").hrv is None  # whole
    assert cat.get("svt-run", episode=True).hr == (210.0, 210.0)
    assert "af" in cat.rhythms()
    fleet = fleet_profiles(20, 1, mix=parse_mix("sinus", cat), catalogue=cat)
    assert all(50.0 <= p.hr_bpm <= 55.0 for p in fleet)


@pytest.mark.parametrize(("text", "message"), [
    ('[sinus]\nhr = [60, 90]\nhrvv = 2\n', "unknown key 'hrvv' (did you mean 'hrv'?)"),
    ('[sinus]\nhr = [90, 60]\n', "within 30..220, low first"),
    ('[x]\nepisode = true\n', "a rhythm or an artifact"),
    ('[x]\nrhythm = "vt"\n', "sinus or af"),
    ('[x]\nepisode = true\nartifact = "leadoff"\n', "did you mean 'lead-off'"),
    ('[x]\nrandom_episodes = [{kind = "af-episod", per_day = 1}]\n', "did you mean 'af-episode'"),
    ('[x\n', "not valid TOML"),
])
def test_bad_catalogue_files_are_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=re.escape(message) if "(" in message else message) as info:
        load_catalogue(path)
    assert "\n" not in str(info.value).strip()


def test_a_missing_user_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read the profile file"):
        load_catalogue(tmp_path / "none.toml")


def test_parse_mix() -> None:
    cat = load_catalogue()
    assert parse_mix("sinus:70%,af:10%,brady:10%,pvc:10%", cat) == [
        ("sinus", 0.7), ("af", 0.1), ("brady", 0.1), ("pvc", 0.1)]
    assert parse_mix("af", cat) == [("af", 1.0)]
    assert parse_mix(" sinus:50 , af:50% ", cat) == [("sinus", 0.5), ("af", 0.5)]


@pytest.mark.parametrize(("text", "message"), [
    ("sinus:70%,afib:30%", "unknown profile 'afib' (did you mean 'af'?)"),
    ("sinus:70%", "adds up to 70 %"),
    ("sinus:70%,af:x", "'x' is not a percentage"),
    ("sinus:100%,sinus:0.0001%", "must be in|twice|adds up"),
    ("sinus:70%,,af:30%", "empty part"),
    ("af-episode:100%", "unknown profile 'af-episode'"),
])
def test_bad_mixes_are_one_line_with_a_suggestion(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(message) if "(" in message else message):
        parse_mix(text, load_catalogue())


def test_a_mix_gives_each_entry_its_share_deterministically() -> None:
    cat = load_catalogue()
    mix = parse_mix("sinus:70%,af:10%,brady:10%,pvc:10%", cat)
    fleet = fleet_profiles(100, 5, mix=mix, catalogue=cat)
    assert Counter(p.rhythm.catalogue for p in fleet) == {"sinus": 70, "af": 10, "brady": 10, "pvc": 10}
    assert fleet == fleet_profiles(100, 5, mix=mix, catalogue=cat)
    assert fleet != fleet_profiles(100, 6, mix=mix, catalogue=cat)
    assert [p.rhythm.catalogue for p in fleet[:20]] != sorted(p.rhythm.catalogue for p in fleet[:20])
    assert all(32 <= p.hr_bpm <= 48 for p in fleet if p.rhythm.catalogue == "brady")
    assert all(0.15 <= p.rhythm.irregularity <= 0.25 for p in fleet if p.rhythm.rhythm == "af")
    # seeds and noise are the plain draw's: a mix changes the heart, not the device
    assert [p.seed for p in fleet] == [p.seed for p in draw_profiles(100, 5)]
    # an odd fleet: largest remainders, still 7 in all
    assert len(fleet_profiles(7, 1, mix=parse_mix("sinus:50%,af:50%", cat), catalogue=cat)) == 7


def test_a_cohort_heart_rate_range_wins_over_the_entry() -> None:
    cat = load_catalogue()
    cohorts = (Cohort.parse("old:5:hr=55-60"), Cohort("rest", 5))
    fleet = fleet_profiles(10, 2, mix=parse_mix("tachy", cat), cohorts=cohorts, catalogue=cat)
    assert all(55 <= p.hr_bpm <= 60 for p in fleet[:5])
    assert all(110 <= p.hr_bpm <= 170 for p in fleet[5:])


def test_parse_episode_forms() -> None:
    cat = load_catalogue()
    e = parse_episode("af-episode@1796045840+20m:devices=0-9", cat)
    assert (e.kind, e.start, e.duration_s, e.devices) == ("af-episode", 1796045840.0, 1200.0, (0, 9))
    assert e.covers(9) and not e.covers(10)
    iso = parse_episode("pause@2026-11-30T10:00:00+6s", cat)
    assert iso.start == 1796032800.0 and iso.devices is None and iso.covers(1234)
    assert parse_episode("vt-run@2026-11-30T10:00:00+01:00+3h:devices=4").start == 1796029200.0
    assert parse_episode("vt-run@0+1.5d:devices=4").devices == (4, 4)
    assert duration_s("90") == 90.0


@pytest.mark.parametrize(("spec", "message"), [
    ("af-episode", "KIND@START\\+DURATION"),
    ("af-episode@soon+20m", "neither Unix seconds nor an ISO time"),
    ("af-episode@0+20y", "not a number with s, m, h or d"),
    ("vt-runs@0+20m", "unknown episode 'vt-runs' \\(did you mean 'vt-run'\\?\\)"),
    ("sinus@0+20m", "unknown episode 'sinus'"),
    ("pause@0+6s:devices=9-3", "run backwards"),
])
def test_bad_episode_specs_are_one_line(spec: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_episode(spec, load_catalogue())


def test_scheduled_episodes_reach_only_their_devices_and_the_profiles_entry() -> None:
    cat = load_catalogue()
    spec = parse_episode("af-episode@1796045840+20m:devices=2-3", cat)
    fleet = fleet_profiles(5, 1, episodes=[spec], catalogue=cat)
    assert [len(p.episodes) for p in fleet] == [0, 0, 1, 1, 0]
    ep = fleet[2].episodes[0]
    assert (ep.label, ep.rhythm, ep.start, ep.end) == ("af", "af", 1796045840.0, 1796047040.0)
    assert 100 <= ep.hr_bpm <= 140
    entry = profile_entry(fleet[2], recording="continuous", sample_rate_hz=250,
                          chunk_seconds=1.0, strip_seconds=None, strips_per_day=None,
                          since=1796045000.0)
    assert entry["catalogue"] == "sinus" and entry["rhythm"] == "sinus"
    assert entry["episodes"][0]["kind"] == "af-episode" and entry["since"] == 1796045000.0
    assert profile_from_entry(entry) == fleet[2]
    old = {k: entry[k] for k in ("hr_bpm", "hrv", "noise", "seed")}  # an older ecgpipe's entry
    assert profile_from_entry(old).rhythm.catalogue == "sinus"
    with pytest.raises(ProfileError, match="malformed"):
        profile_from_entry({"hr_bpm": 60})
