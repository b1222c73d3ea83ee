"""What a patient's heart does, resolved from the catalogue (devices/catalogue.py): plain values.

    Rhythm     the baseline rhythm and its artifacts: sinus or af, PVCs, wander, mains, and
               the random episodes the catalogue entry schedules (`EventRule`)
    Episode    one scheduled window in which another rhythm (af, vt, pause) or an artifact
               (lead-off, motion, emg, wander, mains) takes over: kind, start, end (simulated
               Unix seconds), and the resolved parameters of its catalogue entry
    EventRule  "N episodes of KIND a day, each LO..HI seconds long", drawn per day from the
               device's seed (`random_episodes`)

Everything here round-trips through JSON (`to_json` / `from_json`), because
fleet/profiles.json must say enough to regenerate a device's beats without the catalogue
(devices.ecg_source.truth_beats). Pure: no numpy, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from devices.errors import ProfileError

RHYTHMS = ("sinus", "af", "vt", "pause")
ARTIFACTS = ("lead-off", "motion", "emg", "wander", "mains")
PVC_PATTERNS = ("random", "bigeminy")


def _num(doc: dict[str, Any], key: str, default: float | None = None) -> float:
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ProfileError(f"{key}={v!r} is not a number")
    return float(v)


@dataclass(frozen=True)
class Episode:
    """A window [start, end) in which `rhythm` (or `artifact`) replaces the baseline."""

    kind: str  # the catalogue entry: af-episode, vt-run, pause, lead-off, ...
    start: float
    end: float
    label: str  # what the truth line says: af, vt, pause, lead-off, ...
    rhythm: str | None = None  # af | vt | pause, or None for an artifact
    artifact: str | None = None
    hr_bpm: float = 0.0  # the episode's rate (af, vt)
    irregularity: float = 0.0  # af: the RR coefficient of variation
    amplitude_mv: float = 0.0  # artifacts: motion, emg, wander, mains size
    mode: str = ""  # lead-off: flat | saturated

    def __post_init__(self) -> None:
        if (self.rhythm is None) == (self.artifact is None):
            raise ProfileError(f"episode {self.kind!r} needs exactly one of rhythm or artifact")
        if self.rhythm is not None and self.rhythm not in RHYTHMS[1:]:
            raise ProfileError(f"episode {self.kind!r}: rhythm {self.rhythm!r} is not one of "
                               f"{RHYTHMS[1:]}")
        if self.artifact is not None and self.artifact not in ARTIFACTS:
            raise ProfileError(f"episode {self.kind!r}: artifact {self.artifact!r} is not one "
                               f"of {ARTIFACTS}")
        if not (math.isfinite(self.start) and self.end > self.start):
            raise ProfileError(f"episode {self.kind!r}: end {self.end} must follow start {self.start}")
        if self.rhythm in ("af", "vt") and not 30.0 <= self.hr_bpm <= 250.0:
            raise ProfileError(f"episode {self.kind!r}: rate {self.hr_bpm} bpm is out of range")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "label": self.label,
                "rhythm": self.rhythm, "artifact": self.artifact, "hr_bpm": self.hr_bpm,
                "irregularity": self.irregularity, "amplitude_mv": self.amplitude_mv,
                "mode": self.mode}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Episode:
        try:
            return cls(str(doc["kind"]), _num(doc, "start"), _num(doc, "end"), str(doc["label"]),
                       doc.get("rhythm"), doc.get("artifact"), _num(doc, "hr_bpm", 0.0),
                       _num(doc, "irregularity", 0.0), _num(doc, "amplitude_mv", 0.0),
                       str(doc.get("mode", "")))
        except KeyError as exc:
            raise ProfileError(f"an episode lacks {exc}") from None

    def moved(self, start: float, end: float) -> Episode:
        """The same episode in another window."""
        return Episode(self.kind, start, end, self.label, self.rhythm, self.artifact,
                       self.hr_bpm, self.irregularity, self.amplitude_mv, self.mode)


@dataclass(frozen=True)
class EventRule:
    """`per_day` episodes like `template` a day on average (Poisson), each min_s..max_s long."""

    template: Episode  # its start/end are ignored: 0..1
    per_day: float
    min_s: float
    max_s: float

    def __post_init__(self) -> None:
        if not (0.0 < self.per_day <= 10_000.0):
            raise ProfileError(f"random {self.template.kind!r}: per_day {self.per_day} must be "
                               "in (0, 10000]")
        if not (0.0 < self.min_s <= self.max_s <= 43_200.0):
            raise ProfileError(f"random {self.template.kind!r}: duration {self.min_s}..{self.max_s}"
                               " s must be within (0, 12 h]")

    def to_json(self) -> dict[str, Any]:
        return {"episode": self.template.to_json(), "per_day": self.per_day,
                "min_s": self.min_s, "max_s": self.max_s}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EventRule:
        ep = doc.get("episode")
        if not isinstance(ep, dict):
            raise ProfileError("a random episode rule lacks its episode")
        return cls(Episode.from_json(ep), _num(doc, "per_day"), _num(doc, "min_s"),
                   _num(doc, "max_s"))


@dataclass(frozen=True)
class Rhythm:
    """A device's baseline rhythm and artifacts (the rate, HRV and noise are the profile's)."""

    catalogue: str = "sinus"  # the catalogue entry
    label: str = "sinus"  # what the baseline truth line says: sinus, brady, tachy, af, pvc...
    rhythm: str = "sinus"  # sinus | af
    irregularity: float = 0.0  # af: RR coefficient of variation
    pvc_rate: float = 0.0  # fraction of beats that are PVCs (bigeminy: 0.5)
    pvc_pattern: str = "random"  # random | bigeminy
    wander_mv: float = 0.0  # respiratory baseline wander
    mains_mv: float = 0.0
    mains_hz: float = 50.0
    emg_mv: float = 0.0  # continuous muscle noise
    random_episodes: tuple[EventRule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.rhythm not in ("sinus", "af"):
            raise ProfileError(f"{self.catalogue}: a baseline rhythm is sinus or af, not "
                               f"{self.rhythm!r}")
        if self.pvc_pattern not in PVC_PATTERNS:
            raise ProfileError(f"{self.catalogue}: pvc pattern {self.pvc_pattern!r} is not one "
                               f"of {PVC_PATTERNS}")
        top = 0.5 if self.pvc_pattern == "bigeminy" else 0.25
        if not 0.0 <= self.pvc_rate <= top:
            raise ProfileError(f"{self.catalogue}: pvc rate {self.pvc_rate} must be in 0..{top} "
                               f"({self.pvc_pattern})")
        if self.rhythm == "af" and not 0.05 <= self.irregularity <= 0.5:
            raise ProfileError(f"{self.catalogue}: af irregularity {self.irregularity} must be "
                               "in 0.05..0.5")
        if self.mains_hz not in (50.0, 60.0):
            raise ProfileError(f"{self.catalogue}: mains is 50 or 60 Hz, not {self.mains_hz}")
        for name in ("wander_mv", "mains_mv", "emg_mv"):
            if not 0.0 <= getattr(self, name) <= 5.0:
                raise ProfileError(f"{self.catalogue}: {name} must be in 0..5 mV")

    def to_json(self) -> dict[str, Any]:
        return {"catalogue": self.catalogue, "rhythm": self.label, "base": self.rhythm,
                "irregularity": self.irregularity, "pvc_rate": self.pvc_rate,
                "pvc_pattern": self.pvc_pattern,
                "artifacts": {"wander_mv": self.wander_mv, "mains_mv": self.mains_mv,
                              "mains_hz": self.mains_hz, "emg_mv": self.emg_mv},
                "random_episodes": [r.to_json() for r in self.random_episodes]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Rhythm:
        """An entry of fleet/profiles.json (or None fields: a plain sinus patient)."""
        if "catalogue" not in doc:
            return cls()  # an entry written before the catalogue existed
        art = doc.get("artifacts") or {}
        rules = doc.get("random_episodes") or []
        if not isinstance(art, dict) or not isinstance(rules, list):
            raise ProfileError("artifacts must be a table and random_episodes a list")
        return cls(str(doc["catalogue"]), str(doc.get("rhythm", doc["catalogue"])),
                   str(doc.get("base", "sinus")), _num(doc, "irregularity", 0.0),
                   _num(doc, "pvc_rate", 0.0), str(doc.get("pvc_pattern", "random")),
                   _num(art, "wander_mv", 0.0), _num(art, "mains_mv", 0.0),
                   _num(art, "mains_hz", 50.0), _num(art, "emg_mv", 0.0),
                   tuple(EventRule.from_json(r) for r in rules))


SINUS = Rhythm()
