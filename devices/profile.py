"""Patient profiles: who each simulated monitor is attached to.

A profile fixes the heart rate, its variability, the electrode noise and the seed that
makes a device's signal its own, and the rhythm (devices/patient.py: the catalogue entry
it came from, PVCs, artifacts, random episodes) and scheduled episodes. Profiles of a fleet
come from one seeded `numpy.random.Generator`, so the same `--seed` always gives the same
fleet. Heart rate is any value from 30 to 220 bpm (drawn to 0.1 bpm): every device
generates its own signal (devices/ecg_source.py), nothing is shared per rate.

A fleet can be split into cohorts (`Cohort`, `--cohort NAME:COUNT[:hr=LO-HI][:strips=N]`):
consecutive groups of devices whose heart rates are drawn from their own range (on the
range) and, in strip mode, who record their own number of strips a day.
A cohort's heart rates come from a second seeded stream, so a fleet without cohorts is
exactly the fleet it always was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from devices.errors import ProfileError
from devices.patient import SINUS, Episode, Rhythm

HR_RANGE: tuple[float, float] = (50.0, 110.0)  # bpm, a fleet's heart rates without a cohort
HRV_RANGE: tuple[float, float] = (1.0, 3.0)  # standard deviation of the heart rate, bpm
NOISE_RANGE_MV: tuple[float, float] = (0.005, 0.03)  # white electrode noise, mV (std)
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class PatientProfile:
    """One patient: mean heart rate and its std (bpm), noise std (mV), and a signal seed."""

    hr_bpm: float
    hrv: float
    noise: float
    seed: int
    strips_per_day: int | None = None  # strip mode: this patient's own count (None: the fleet's)
    cohort: str = ""
    rhythm: Rhythm = SINUS  # the catalogue entry, resolved (devices/catalogue.py)
    episodes: tuple[Episode, ...] = ()  # scheduled episodes, by start

    def __post_init__(self) -> None:
        if not (isinstance(self.hr_bpm, (int, float)) and 30.0 <= self.hr_bpm <= 220.0):
            raise ProfileError(f"hr_bpm={self.hr_bpm!r} must be between 30 and 220 bpm")
        if not (isinstance(self.hrv, (int, float)) and 0.0 <= self.hrv <= 20.0):
            raise ProfileError(f"hrv={self.hrv!r} must be between 0 and 20 bpm")
        if not (isinstance(self.noise, (int, float)) and 0.0 <= self.noise <= 1.0):
            raise ProfileError(f"noise={self.noise!r} must be between 0 and 1 mV")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or not (
            0 <= self.seed < SEED_LIMIT
        ):
            raise ProfileError(f"seed={self.seed!r} must be an integer in [0, 2**32)")
        if self.strips_per_day is not None and not (
            isinstance(self.strips_per_day, int) and self.strips_per_day >= 1
        ):
            raise ProfileError(f"strips_per_day={self.strips_per_day!r} must be at least 1")
        object.__setattr__(self, "hr_bpm", float(self.hr_bpm))
        object.__setattr__(self, "hrv", float(self.hrv))
        object.__setattr__(self, "noise", float(self.noise))
        object.__setattr__(self, "seed", int(self.seed))


@dataclass(frozen=True)
class Cohort:
    """A group of consecutive devices: its size, heart-rate range (bpm), strips a day, and the
    catalogue entry its patients have (devices/catalogue.py; None: the fleet's mix, or sinus)."""

    name: str
    devices: int
    hr_bpm: tuple[float, float] | None = None
    strips_per_day: int | None = None
    profile: str | None = None

    def __post_init__(self) -> None:
        if not _COHORT_NAME.fullmatch(self.name):
            raise ProfileError(f"cohort name {self.name!r} must be letters, digits, '-' or '_'")
        if self.devices < 1:
            raise ProfileError(f"cohort {self.name!r} needs at least 1 device, got {self.devices}")
        if self.hr_bpm is not None:
            lo, hi = self.hr_bpm
            if not 30.0 <= lo <= hi <= 220.0:
                raise ProfileError(f"cohort {self.name!r}: heart rate {lo:g}-{hi:g} must be a "
                                   "range within 30..220 bpm")
        if self.strips_per_day is not None and self.strips_per_day < 1:
            raise ProfileError(f"cohort {self.name!r}: strips a day must be at least 1")

    def hr_range(self) -> tuple[float, float]:
        """The heart rates its devices are drawn from (uniformly, to 0.1 bpm); without a
        range, the fleet's own HR_RANGE (its devices keep the heart rates of the fleet's draw)."""
        return self.hr_bpm if self.hr_bpm is not None else HR_RANGE

    @classmethod
    def parse(cls, spec: str) -> Cohort:
        """`NAME:COUNT[:hr=LO-HI][:strips=N][:profile=ENTRY]`, e.g.
        `elderly:300:hr=55-75:strips=4`, `af-watch:60:profile=af`."""
        parts = spec.split(":")
        if len(parts) < 2:
            raise ProfileError(f"cohort {spec!r} is not NAME:COUNT[:hr=LO-HI][:strips=N]")
        name, count, opts = parts[0], parts[1], parts[2:]
        try:
            devices = int(count)
        except ValueError:
            raise ProfileError(f"cohort {spec!r}: device count {count!r} is not a whole number") from None
        hr: tuple[float, float] | None = None
        strips: int | None = None
        profile: str | None = None
        for opt in opts:
            key, _, value = opt.partition("=")
            try:
                if key == "hr" and hr is None:
                    lo, _, hi = value.partition("-")
                    hr = (float(lo), float(hi or lo))
                elif key == "strips" and strips is None:
                    strips = int(value)
                elif key == "profile" and profile is None and value:
                    profile = value
                else:
                    raise ValueError
            except ValueError:
                raise ProfileError(f"cohort {spec!r}: {opt!r} is not hr=LO-HI, strips=N or "
                                   "profile=ENTRY (each at most once)") from None
        return cls(name, devices, hr, strips, profile)


_COHORT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def fleet_profiles(n: int, seed: int,
                   cohorts: tuple[Cohort, ...] | list[Cohort] = ()) -> list[PatientProfile]:
    """`n` profiles drawn deterministically from `numpy.random.default_rng(seed)`; with
    cohorts (whose sizes must add up to `n`), device i belongs to the cohort that covers i
    in order, and takes its heart rate and strips a day from it."""
    base = _draw(n, seed)
    if not cohorts:
        return base
    if sum(c.devices for c in cohorts) != n:
        raise ProfileError(f"the cohorts have {sum(c.devices for c in cohorts)} devices in all, "
                           f"but the fleet has {n}")
    if len({c.name for c in cohorts}) != len(cohorts):
        raise ProfileError("two cohorts have the same name")
    rng = np.random.default_rng([seed, _COHORT_TAG])
    out: list[PatientProfile] = []
    for c in cohorts:
        hrs = _rates(rng, c.hr_range(), c.devices) if c.hr_bpm else None
        for k in range(c.devices):
            p = base[len(out)]
            out.append(replace(p, hr_bpm=float(hrs[k]) if hrs is not None else p.hr_bpm,
                               strips_per_day=c.strips_per_day, cohort=c.name))
    return out


_COHORT_TAG = 0xC0_4027


def _draw(n: int, seed: int) -> list[PatientProfile]:
    """`n` profiles drawn deterministically from `numpy.random.default_rng(seed)`."""
    if n < 0:
        raise ProfileError(f"a fleet cannot have {n} devices")
    rng = np.random.default_rng(seed)
    hrs = _rates(rng, HR_RANGE, n)
    hrvs = np.round(rng.uniform(*HRV_RANGE, size=n), 2)
    noises = np.round(rng.uniform(*NOISE_RANGE_MV, size=n), 4)
    seeds = rng.integers(0, SEED_LIMIT, size=n, dtype=np.uint64)
    return [
        PatientProfile(hr_bpm=float(h), hrv=float(v), noise=float(z), seed=int(s))
        for h, v, z, s in zip(hrs, hrvs, noises, seeds, strict=True)
    ]


def _rates(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    """`n` heart rates drawn uniformly within `bounds`, to 0.1 bpm."""
    lo, hi = bounds
    return np.clip(np.round(rng.uniform(lo, hi, size=n), 1), lo, hi)
