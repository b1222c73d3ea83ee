"""fleet/profiles.json: the patient behind each device, written once by the fleet at start.

    {"written_at": 1796045935.6,          # the fleet's (simulated) clock when it started
     "devices": {"hc-0000": {"hr_bpm": 70.0, "hrv": 1.0, "noise": 0.012, "seed": 123,
                             "cohort": null, "recording": "continuous", "sample_rate_hz": 250,
                             "chunk_seconds": 1.0, "strip_seconds": null,
                             "strips_per_day": null, "strip_chunks": null,
                             "catalogue": "af", "rhythm": "af", "base": "af",
                             "irregularity": 0.2, "pvc_rate": 0.0, "pvc_pattern": "random",
                             "artifacts": {"wander_mv": 0.0, "mains_mv": 0.0,
                                           "mains_hz": 50.0, "emg_mv": 0.0},
                             "random_episodes": [], "episodes": [{"kind": "vt-run",
                                 "start": 1796045840.0, "end": 1796045848.0, "label": "vt",
                                 "rhythm": "vt", "artifact": null, "hr_bpm": 170.0, ...}],
                             "since": 1796045835.6}, ...}}

`catalogue` names the catalogue entry (devices/profiles.toml), `rhythm` the baseline's label
(sinus, brady, tachy, af, pvc, bigeminy...), `base` the rhythm process (sinus | af), and the
rest the resolved parameters (devices/patient.py), so that the entry alone regenerates the
device's beats (`profile_from_entry`, devices.ecg_source.truth_beats). `since` is when the
device's signal (and its baseline truth segment) starts: the first fleet start that gave it
this seed; a restart keeps it (the fleet reads the previous file before writing its own).

Each device's entry is whole on its own (the fleet-wide recording settings are repeated in
it), so `inspect device` reads one entry and needs nothing else. `strips_per_day` is the
count the device really records (its cohort's, else the fleet's; None when recording
continuously). The file is written atomically (ecgcore.files.write_json_atomic): a reader sees
the previous fleet's file or this one, never half of one. A state dir from an ecgpipe older
than this file has none: `read_profiles` then returns None.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from devices.errors import ProfileError
from devices.patient import Episode, Rhythm
from devices.profile import PatientProfile
from ecgcore.files import read_json, write_json_atomic

PROFILES_FILE = "profiles.json"


def profiles_path(fleet_dir: Path) -> Path:
    return Path(fleet_dir) / PROFILES_FILE


def profile_entry(profile: PatientProfile, *, recording: str, sample_rate_hz: int,
                  chunk_seconds: float, strip_seconds: float | None,
                  strips_per_day: int | None, strip_chunks: int | None = None,
                  since: float | None = None) -> dict[str, Any]:
    """One device's entry (module docstring). strip_seconds/strips_per_day/strip_chunks: None
    when the fleet records continuously; strips_per_day is the fleet's, the profile's own
    count wins."""
    strip = strip_seconds is not None
    return {"hr_bpm": profile.hr_bpm, "hrv": profile.hrv, "noise": profile.noise,
            "seed": profile.seed, "cohort": profile.cohort or None, "recording": recording,
            "sample_rate_hz": sample_rate_hz, "chunk_seconds": chunk_seconds,
            "strip_seconds": strip_seconds if strip else None,
            "strips_per_day": (profile.strips_per_day or strips_per_day) if strip else None,
            "strip_chunks": strip_chunks if strip else None,
            **profile.rhythm.to_json(),
            "episodes": [e.to_json() for e in profile.episodes],
            "since": None if since is None else round(since, 3)}


def profile_from_entry(entry: dict[str, Any]) -> PatientProfile:
    """The profile an entry was written from (its rhythm and episodes included); an entry
    of an ecgpipe older than the catalogue reads as plain sinus. ProfileError if malformed."""
    try:
        episodes = entry.get("episodes") or []
        if not isinstance(episodes, list):
            raise ProfileError("episodes must be a list")
        return PatientProfile(
            hr_bpm=entry["hr_bpm"], hrv=entry["hrv"], noise=entry["noise"], seed=entry["seed"],
            cohort=entry.get("cohort") or "", rhythm=Rhythm.from_json(entry),
            episodes=tuple(Episode.from_json(e) for e in episodes))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ProfileError(f"a profiles.json entry is malformed: {exc!r}") from None


def write_profiles(fleet_dir: Path, entries: Iterable[tuple[str, dict[str, Any]]],
                   written_at: float) -> Path:
    """Write fleet/profiles.json atomically; returns its path."""
    path = profiles_path(fleet_dir)
    write_json_atomic(path, {"written_at": round(written_at, 3), "devices": dict(entries)})
    return path


def read_profiles(fleet_dir: Path) -> dict[str, dict[str, Any]] | None:
    """Device id → profile entry; None when the file is absent or unreadable (an older
    ecgpipe's state dir, or a fleet that never started)."""
    doc = read_json(profiles_path(fleet_dir))
    if not isinstance(doc, dict) or not isinstance(doc.get("devices"), dict):
        return None
    return {str(k): v for k, v in doc["devices"].items() if isinstance(v, dict)}
