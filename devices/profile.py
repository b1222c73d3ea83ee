"""Patient profiles: who each simulated monitor is attached to.

A profile fixes the heart rate, its variability, the electrode noise and the seed that
makes a device's signal its own. Profiles of a fleet come from one seeded
`numpy.random.Generator`, so the same `--seed` always gives the same fleet.

Heart rate and variability are quantized (`HR_LEVELS`, `HRV_LEVELS`) so that the ECG bank
needs one generated signal per distinct (hr, hrv) pair, not one per device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devices.errors import ProfileError

HR_LEVELS: tuple[float, ...] = tuple(float(h) for h in range(50, 111, 5))  # bpm
HRV_LEVELS: tuple[float, ...] = (1.0, 2.0)  # standard deviation of the heart rate, bpm
NOISE_RANGE_MV: tuple[float, float] = (0.005, 0.03)  # white electrode noise, mV (std)
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class PatientProfile:
    """One patient: mean heart rate and its std (bpm), noise std (mV), and a signal seed."""

    hr_bpm: float
    hrv: float
    noise: float
    seed: int

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
        object.__setattr__(self, "hr_bpm", float(self.hr_bpm))
        object.__setattr__(self, "hrv", float(self.hrv))
        object.__setattr__(self, "noise", float(self.noise))
        object.__setattr__(self, "seed", int(self.seed))


def fleet_profiles(n: int, seed: int) -> list[PatientProfile]:
    """`n` profiles drawn deterministically from `numpy.random.default_rng(seed)`."""
    if n < 0:
        raise ProfileError(f"a fleet cannot have {n} devices")
    rng = np.random.default_rng(seed)
    hrs = rng.choice(np.array(HR_LEVELS), size=n)
    hrvs = rng.choice(np.array(HRV_LEVELS), size=n)
    noises = np.round(rng.uniform(*NOISE_RANGE_MV, size=n), 4)
    seeds = rng.integers(0, SEED_LIMIT, size=n, dtype=np.uint64)
    return [
        PatientProfile(hr_bpm=float(h), hrv=float(v), noise=float(z), seed=int(s))
        for h, v, z, s in zip(hrs, hrvs, noises, seeds, strict=True)
    ]
