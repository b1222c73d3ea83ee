"""The patient catalogue (devices/profiles.toml, documented in its header) and what uses it.

    load_catalogue(extra)      the shipped catalogue, plus a user's TOML file whose entries
                               add to it or replace an entry of the same name whole
    parse_mix(text, cat)       "sinus:70%,af:10%,brady:10%,pvc:10%" -> [(name, fraction)]
    parse_episode(spec, cat)   "af-episode@1796045840+20m:devices=0-9" -> EpisodeSpec
    fleet_profiles(n, seed, mix=, cohorts=, episodes=, catalogue=)
                               each device's PatientProfile, its rhythm resolved from its entry

Every bad input is one ProfileError line, naming the closest known word when there is one.
A mix gives each entry round(n * fraction) devices (largest remainders), spread over the
fleet by a seeded shuffle; each device then draws its values within its entry's ranges from
a generator seeded by (seed, device index), so the same --seed gives the same patients.
Without a mix every device is "sinus" with the heart rate and HRV devices/profile.py draws,
exactly the fleet a --seed always gave.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from devices.errors import ProfileError
from devices.patient import ARTIFACTS, PVC_PATTERNS, Episode, EventRule, Rhythm
from devices.profile import Cohort, PatientProfile
from devices.profile import fleet_profiles as draw_profiles

BUILTIN = Path(__file__).with_name("profiles.toml")
Range = tuple[float, float]
_KEYS = {"description", "label", "rhythm", "hr", "hrv", "irregularity", "pvc_rate", "pvc_pattern",
         "wander_mv", "mains_mv", "mains_hz", "emg_mv", "random_episodes", "episode", "artifact",
         "amplitude_mv", "mode", "duration"}
_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_MIX_TAG, _DEVICE_TAG = 0x313A, 0xD3F1


def _did_you_mean(word: str, known: list[str] | set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def duration_s(text: str) -> float:
    """"20m", "6s", "3h", "1.5d" or a bare number of seconds -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(text))
    if not m or m.group(2) not in ("", *_UNITS):
        raise ProfileError(f"duration {text!r} is not a number with s, m, h or d")
    value = float(m.group(1)) * _UNITS.get(m.group(2), 1.0)
    if not value > 0:
        raise ProfileError(f"duration {text!r} must be positive")
    return value


@dataclass(frozen=True)
class Entry:
    """One catalogue entry (profiles.toml's header says what each field means)."""

    name: str
    description: str = ""
    episode: bool = False
    label: str = ""
    rhythm: str | None = None
    artifact: str | None = None
    hr: Range | None = None
    hrv: Range | None = None
    irregularity: Range = (0.2, 0.2)
    pvc_rate: float = 0.0
    pvc_pattern: str = "random"
    wander_mv: Range = (0.0, 0.0)
    mains_mv: Range = (0.0, 0.0)
    mains_hz: float = 50.0
    emg_mv: Range = (0.0, 0.0)
    amplitude_mv: Range = (0.0, 0.0)
    mode: str = ""
    duration_s: float | None = None
    random_episodes: tuple[tuple[str, float, float, float], ...] = ()  # kind, per_day, lo_s, hi_s

    @property
    def kind(self) -> str:
        """What `ecgpipe profiles` shows: the rhythm or artifact."""
        return self.rhythm or self.artifact or "sinus"


def _range(name: str, key: str, v: Any, lo: float, hi: float) -> Range:
    vals = v if isinstance(v, list) else [v, v]
    if len(vals) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                 for x in vals):
        raise ProfileError(f"profile {name!r}: {key} must be a number or [LO, HI], got {v!r}")
    a, b = float(vals[0]), float(vals[1])
    if not lo <= a <= b <= hi:
        raise ProfileError(f"profile {name!r}: {key} {v!r} must be within {lo:g}..{hi:g}, low first")
    return (a, b)


def _rules(name: str, v: Any) -> tuple[tuple[str, float, float, float], ...]:
    if not isinstance(v, list):
        raise ProfileError(f"profile {name!r}: random_episodes must be a list of tables")
    out = []
    for r in v:
        if not isinstance(r, dict) or not isinstance(r.get("kind"), str) or "per_day" not in r:
            raise ProfileError(f"profile {name!r}: a random episode needs kind and per_day")
        unit = 60.0 if "minutes" in r else 1.0
        span = _range(name, "minutes" if unit == 60.0 else "seconds",
                      r.get("minutes", r.get("seconds", [10, 10])), 0.0, 43_200.0 / unit)
        out.append((r["kind"], float(r["per_day"]), span[0] * unit, span[1] * unit))
    return tuple(out)


def _entry(name: str, doc: Any) -> Entry:
    if not isinstance(doc, dict):
        raise ProfileError(f"profile {name!r} must be a table")
    for key in doc:
        if key not in _KEYS:
            raise ProfileError(f"profile {name!r}: unknown key {key!r}{_did_you_mean(key, _KEYS)}")
    episode = bool(doc.get("episode", False))
    rhythm, artifact = doc.get("rhythm"), doc.get("artifact")
    if episode and (rhythm is None) == (artifact is None):
        raise ProfileError(f"profile {name!r}: an episode has a rhythm or an artifact")
    if not episode and (artifact is not None or rhythm not in (None, "sinus", "af")):
        raise ProfileError(f"profile {name!r}: a baseline rhythm is sinus or af")
    if episode and rhythm not in (None, "af", "vt", "pause"):
        raise ProfileError(f"profile {name!r}: an episode's rhythm is af, vt or pause")
    if artifact is not None and artifact not in ARTIFACTS:
        raise ProfileError(f"profile {name!r}: artifact {artifact!r} is not one of {ARTIFACTS}"
                           f"{_did_you_mean(str(artifact), set(ARTIFACTS))}")
    pattern = str(doc.get("pvc_pattern", "random"))
    if pattern not in PVC_PATTERNS:
        raise ProfileError(f"profile {name!r}: pvc_pattern {pattern!r} is random or bigeminy")
    mode = str(doc.get("mode", ""))
    if artifact == "lead-off" and mode not in ("flat", "saturated", "any"):
        raise ProfileError(f"profile {name!r}: lead-off mode is flat, saturated or any")
    return Entry(
        name, str(doc.get("description", "")), episode,
        str(doc.get("label") or rhythm or artifact or name) if episode else str(doc.get("label", name)),
        None if rhythm is None else str(rhythm), None if artifact is None else str(artifact),
        _range(name, "hr", doc["hr"], 30.0, 250.0 if episode else 220.0) if "hr" in doc else None,
        _range(name, "hrv", doc["hrv"], 0.0, 20.0) if "hrv" in doc else None,
        _range(name, "irregularity", doc.get("irregularity", 0.2), 0.05, 0.5),
        _range(name, "pvc_rate", doc.get("pvc_rate", 0.0), 0.0, 0.5)[0], pattern,
        _range(name, "wander_mv", doc.get("wander_mv", 0.0), 0.0, 5.0),
        _range(name, "mains_mv", doc.get("mains_mv", 0.0), 0.0, 5.0),
        _range(name, "mains_hz", doc.get("mains_hz", 50.0), 50.0, 60.0)[0],
        _range(name, "emg_mv", doc.get("emg_mv", 0.0), 0.0, 5.0),
        _range(name, "amplitude_mv", doc.get("amplitude_mv", 0.0), 0.0, 5.0), mode,
        duration_s(doc["duration"]) if "duration" in doc else None,
        _rules(name, doc.get("random_episodes", [])))


@dataclass(frozen=True)
class Catalogue:
    entries: dict[str, Entry]

    def __post_init__(self) -> None:
        for e in self.entries.values():
            for kind, *_ in e.random_episodes:
                target = self.entries.get(kind)
                if target is None or not target.episode:
                    raise ProfileError(f"profile {e.name!r}: random episode {kind!r} is not an "
                                       f"episode of the catalogue{_did_you_mean(kind, self.episodes())}")

    def get(self, name: str, *, episode: bool | None = None) -> Entry:
        """The entry `name`; ProfileError (with a did-you-mean) if absent or of the wrong sort."""
        e = self.entries.get(name)
        pool = self.names() if episode is None else (self.episodes() if episode else self.rhythms())
        if e is None or (episode is not None and e.episode != episode):
            what = "episode" if episode else "profile"
            raise ProfileError(f"unknown {what} {name!r}{_did_you_mean(name, pool)}; known: "
                               f"{', '.join(pool)}")
        return e

    def names(self) -> list[str]:
        return list(self.entries)

    def rhythms(self) -> list[str]:
        return [n for n, e in self.entries.items() if not e.episode]

    def episodes(self) -> list[str]:
        return [n for n, e in self.entries.items() if e.episode]


def load_catalogue(extra: Path | None = None) -> Catalogue:
    """The shipped catalogue, plus `extra`'s entries (added, or replacing one whole)."""
    docs: dict[str, Any] = {}
    for path in (BUILTIN, extra):
        if path is None:
            continue
        try:
            with Path(path).open("rb") as fh:
                docs.update(tomllib.load(fh))
        except OSError as exc:
            raise ProfileError(f"cannot read the profile file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"profile file {path} is not valid TOML: {exc}") from None
    return Catalogue({name: _entry(name, doc) for name, doc in docs.items()})


def parse_mix(text: str, catalogue: Catalogue) -> list[tuple[str, float]]:
    """"sinus:70%,af:10%,brady:10%,pvc:10%" (shares in percent, adding up to 100; a lone
    name is 100 %) -> [(name, fraction)], in the order given."""
    out: list[tuple[str, float]] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            raise ProfileError(f"profile mix {text!r} has an empty part")
        name, sep, share = part.partition(":")
        catalogue.get(name.strip(), episode=False)
        if not sep:
            share = "100"
        try:
            value = float(share.strip().removesuffix("%"))
        except ValueError:
            raise ProfileError(f"profile mix {text!r}: {share!r} is not a percentage") from None
        if not (math.isfinite(value) and 0 < value <= 100):
            raise ProfileError(f"profile mix {text!r}: {share!r} must be in (0, 100] %")
        if any(n == name.strip() for n, _ in out):
            raise ProfileError(f"profile mix {text!r} names {name.strip()!r} twice")
        out.append((name.strip(), value / 100.0))
    total = sum(f for _, f in out)
    if abs(total - 1.0) > 1e-6:
        raise ProfileError(f"profile mix {text!r} adds up to {total * 100:g} %, not 100 %")
    return out


@dataclass(frozen=True)
class EpisodeSpec:
    """A scheduled episode: KIND from START for DURATION s, on devices first..last (None: all)."""

    kind: str
    start: float
    duration_s: float
    devices: tuple[int, int] | None = None

    def covers(self, i: int) -> bool:
        return self.devices is None or self.devices[0] <= i <= self.devices[1]


def _start(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ProfileError(f"episode {spec!r}: start {text!r} is neither Unix seconds nor an "
                           "ISO time") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def parse_episode(spec: str, catalogue: Catalogue | None = None) -> EpisodeSpec:
    """`KIND@START+DURATION[:devices=I-J]`, e.g. `af-episode@1796045840+20m:devices=0-9` or
    `pause@2026-11-30T10:00:00+6s`. START: simulated Unix seconds or an ISO time (UTC unless
    it says); DURATION: 20m, 6s, 3h, 1d or seconds. With a catalogue, KIND is checked."""
    m = re.fullmatch(r"([A-Za-z0-9_-]+)@(.+)\+([0-9.]+[a-z]*)(?::devices=(\d+)(?:-(\d+))?)?",
                     spec.strip())
    if not m:
        raise ProfileError(f"episode {spec!r} is not KIND@START+DURATION[:devices=I-J]")
    kind, start, dur, lo, hi = m.groups()
    if catalogue is not None:
        catalogue.get(kind, episode=True)
    devices = None
    if lo is not None:
        devices = (int(lo), int(hi if hi is not None else lo))
        if devices[1] < devices[0]:
            raise ProfileError(f"episode {spec!r}: devices {lo}-{hi} run backwards")
    return EpisodeSpec(kind, _start(start, spec), duration_s(dur), devices)


def _draw(rng: np.random.Generator, r: Range) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(*r))


def resolve_episode(entry: Entry, rng: np.random.Generator, start: float = 0.0,
                    end: float = 1.0) -> Episode:
    """An episode entry's values drawn for one device."""
    hr = round(_draw(rng, entry.hr), 1) if entry.hr else 120.0
    mode = entry.mode
    if entry.artifact == "lead-off" and mode == "any":
        mode = "flat" if rng.random() < 0.5 else "saturated"
    return Episode(entry.name, start, end, entry.label, entry.rhythm, entry.artifact,
                   hr if entry.rhythm in ("af", "vt") else 0.0,
                   round(_draw(rng, entry.irregularity), 3) if entry.rhythm == "af" else 0.0,
                   round(_draw(rng, entry.amplitude_mv), 3), mode)


def resolve(catalogue: Catalogue, profile: PatientProfile, name: str, rng: np.random.Generator,
            *, keep_hr: bool) -> PatientProfile:
    """`profile` as a patient of entry `name` (its rate kept if `keep_hr`: a cohort's)."""
    e = catalogue.get(name, episode=False)
    rules = tuple(EventRule(resolve_episode(catalogue.get(kind, episode=True), rng),
                            per_day, lo, hi) for kind, per_day, lo, hi in e.random_episodes)
    rhythm = Rhythm(
        e.name, e.label, e.rhythm or "sinus",
        round(_draw(rng, e.irregularity), 3) if e.rhythm == "af" else 0.0,
        e.pvc_rate, e.pvc_pattern, round(_draw(rng, e.wander_mv), 3),
        round(_draw(rng, e.mains_mv), 3), e.mains_hz, round(_draw(rng, e.emg_mv), 3), rules)
    hr = profile.hr_bpm if keep_hr or e.hr is None else round(_draw(rng, e.hr), 1)
    hrv = profile.hrv if e.hrv is None else round(_draw(rng, e.hrv), 2)
    return replace(profile, hr_bpm=hr, hrv=hrv, rhythm=rhythm)


def _assign(n: int, seed: int, mix: list[tuple[str, float]]) -> list[str]:
    """Largest-remainder counts per entry, spread over the fleet by a seeded shuffle."""
    exact = [n * f for _, f in mix]
    counts = [math.floor(x) for x in exact]
    for i in sorted(range(len(mix)), key=lambda i: counts[i] - exact[i])[: n - sum(counts)]:
        counts[i] += 1
    names = [name for (name, _), c in zip(mix, counts, strict=True) for _ in range(c)]
    order = np.random.default_rng([seed, _MIX_TAG]).permutation(n)
    return [names[int(k)] for k in order]


def fleet_profiles(n: int, seed: int, *, mix: list[tuple[str, float]] | None = None,
                   cohorts: tuple[Cohort, ...] | list[Cohort] = (),
                   episodes: tuple[EpisodeSpec, ...] | list[EpisodeSpec] = (),
                   catalogue: Catalogue | None = None) -> list[PatientProfile]:
    """Each device's profile: devices/profile.py's draw (and cohorts), then its catalogue
    entry from `mix`, then its scheduled `episodes` (module docstring)."""
    base = draw_profiles(n, seed, cohorts)
    chosen = {c.name: c.profile for c in cohorts if c.profile}  # a cohort's entry is exact
    if not mix and not episodes and not chosen:
        return base
    cat = catalogue if catalogue is not None else load_catalogue()
    for name in chosen.values():
        cat.get(name, episode=False)  # a one-line ProfileError with a did-you-mean
    names = _assign(n, seed, mix) if mix else ["sinus"] * n
    cohort_hr = {c.name for c in cohorts if c.hr_bpm is not None}
    out = []
    for i, p in enumerate(base):
        rng = np.random.default_rng([seed, _DEVICE_TAG, i])
        entry = chosen.get(p.cohort or "", names[i])
        q = (resolve(cat, p, entry, rng, keep_hr=p.cohort in cohort_hr)
             if mix or p.cohort in chosen else p)
        eps = [resolve_episode(cat.get(s.kind, episode=True), rng, s.start, s.start + s.duration_s)
               for s in episodes if s.covers(i)]
        out.append(replace(q, episodes=tuple(sorted(eps, key=lambda e: e.start))) if eps else q)
    return out
