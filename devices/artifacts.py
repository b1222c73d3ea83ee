"""What is added to the heart's signal: AF f-waves, artifacts and electrode noise, in numpy.

Every component is a function of the absolute sample index n (time t = n / fs, simulated
Unix seconds) and of draws seeded by the device seed, so any stretch can be computed on its
own and comes out the same whatever order it is asked in. They are generated here rather
than with `neurokit2.signal_distort`, which costs about a millisecond per call and draws
from one generator per call (a chunk would not join the next one).

    f-waves   atrial fibrillation's baseline: two sinusoids at 4-9 Hz (drawn per device),
              0.03-0.08 mV, frequency-modulated at 0.2 Hz, wherever AF is the rhythm
    wander    respiratory baseline wander: a sinusoid at 0.15-0.3 Hz plus a slower one at
              0.037 Hz (continuous, `wander_mv`), or a 0.3-Hz sway under a Hann window (episode)
    mains     50 or 60 Hz interference; its phase is computed from n in whole numbers, exact
              at any n
    emg       muscle noise: white noise of the episode's (or `emg_mv`) size
    motion    a burst: a 0.5-3 Hz oscillation of the episode's size under a Hann window
    lead-off  not added: the stretch is replaced (flat: 0 mV; saturated: full scale) and the
              reading that holds it is flagged (wire.FLAG_LEAD_OFF)
    noise     white electrode noise, `noise` mV; drawn per render block from
              (seed, block number), so it is the same at any n whatever was read before
"""

from __future__ import annotations

import numpy as np

from devices.patient import Episode, Rhythm
from devices.rhythm import rng_for, tag

SATURATED_MV = 1e6  # a lead-off sample at full scale: clipped to int16's top on the wire


class Components:
    """A device's artifact parameters, drawn once from its seed."""

    def __init__(self, seed: int, rhythm: Rhythm) -> None:
        self.seed = seed
        self.rhythm = rhythm
        rng = rng_for(seed, tag("artifacts"))
        self.f_hz = rng.uniform(4.0, 9.0, 2)
        self.f_amp = float(rng.uniform(0.03, 0.08))
        self.f_phase = rng.uniform(0.0, 2 * np.pi, 3)
        self.resp_hz = float(rng.uniform(0.15, 0.3))
        self.w_phase = rng.uniform(0.0, 2 * np.pi, 2)
        self.mains_phase = float(rng.uniform(0.0, 2 * np.pi))

    def f_waves(self, t: np.ndarray) -> np.ndarray:
        fm = 0.3 * np.sin(2 * np.pi * 0.2 * t + self.f_phase[2])
        out: np.ndarray = self.f_amp * (np.sin(2 * np.pi * self.f_hz[0] * t + self.f_phase[0] + fm)
                                        + 0.6 * np.sin(2 * np.pi * self.f_hz[1] * t + self.f_phase[1]))
        return out

    def wander(self, t: np.ndarray, mv: float) -> np.ndarray:
        out: np.ndarray = mv * (np.sin(2 * np.pi * self.resp_hz * t + self.w_phase[0])
                                + 0.5 * np.sin(2 * np.pi * 0.037 * t + self.w_phase[1]))
        return out

    def mains(self, n: np.ndarray, fs: int, mv: float, hz: float) -> np.ndarray:
        cycles = (n * round(hz)) % fs  # whole numbers: exact at any n
        return mv * np.sin(2 * np.pi * cycles / fs + self.mains_phase)

    def add_continuous(self, x: np.ndarray, t: np.ndarray, n: np.ndarray, fs: int,
                       white: np.random.Generator) -> None:
        """The artifacts the rhythm carries all the time (wander, mains, emg)."""
        r = self.rhythm
        if r.wander_mv > 0:
            x += self.wander(t, r.wander_mv)
        if r.mains_mv > 0:
            x += self.mains(n, fs, r.mains_mv, r.mains_hz)
        if r.emg_mv > 0:
            x += r.emg_mv * white.standard_normal(x.size)

    def add_episode(self, x: np.ndarray, t: np.ndarray, n: np.ndarray, fs: int, e: Episode,
                    white: np.random.Generator) -> np.ndarray | None:
        """Add artifact episode `e` where it overlaps; returns its lead-off mask, if any."""
        inside = (t >= e.start) & (t < e.end)
        if not inside.any():
            return None
        if e.artifact == "lead-off":
            return inside
        ti = t[inside]
        phase = (ti - e.start) / (e.end - e.start)
        window = np.sin(np.pi * phase) ** 2
        amp = e.amplitude_mv
        if e.artifact == "motion":
            rng = rng_for(self.seed, tag("motion"), round(e.start * 1000))
            f, ph = float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.0, 2 * np.pi))
            x[inside] += amp * window * np.sin(2 * np.pi * f * (ti - e.start) + ph)
        elif e.artifact == "emg":
            x[inside] += amp * white.standard_normal(ti.size)
        elif e.artifact == "wander":
            x[inside] += amp * window * np.sin(2 * np.pi * 0.3 * (ti - e.start))
        elif e.artifact == "mains":
            x[inside] += self.mains(n[inside], fs, amp, self.rhythm.mains_hz)
        return None


def apply_lead_off(x: np.ndarray, mask: np.ndarray, mode: str) -> None:
    """Replace the masked stretch: flat (0 mV) or saturated (full scale)."""
    x[mask] = SATURATED_MV if mode == "saturated" else 0.0
