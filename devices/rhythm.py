"""When a device's heart beats: R-peak times and beat kinds, reachable at any time, never looping.

Time is cut into fixed blocks of BLOCK_S seconds of simulated Unix time; block j covers
[j*BLOCK_S, (j+1)*BLOCK_S). Everything in a block comes from generators seeded by
(device seed, process tag, j), so the beats around any time t are computed from the one or
two blocks around t, never from what came before, and the same seed gives the same beats
whatever order the blocks are asked in (and after a fleet restart). Every rhythm process
puts a beat exactly at each block start, so blocks join without a seam.

Processes (one per rhythm, each with its own tag):

    sinus  ecgsyn's RR process (McSharry et al. 2003, as neurokit2's
           _ecg_simulate_rrprocess): RR(t) = mean + std * m(t), m with the bimodal power
           spectrum of two gaussians at 0.1 Hz (LF, Mayer waves, sd 0.01 Hz) and 0.25 Hz
           (HF, respiration, sd 0.01 Hz), LF/HF 0.5, made by an inverse FFT of random
           phases. A block's m(t) overlap-adds two 2-block segments with sine windows
           (sin^2 + cos^2 = 1: the variance stays constant and m is continuous), so m never
           repeats. RR std = 60 * hrv / hr^2 s (ecgsyn's). Beats fall where the integral of
           1/RR crosses a whole number; each block's rate is scaled by less than
           0.5/(beats in the block) (<0.4 % at 30 bpm) so that it holds a whole number of beats.
    af     irregularly irregular: RR i.i.d. from a gamma distribution with the given
           coefficient of variation, no LF/HF structure, scaled to fill the block.
    vt     the sinus process at the VT rate with 1.5 bpm of variability; ventricular beats.
    pause  no beats at all.

Beat kinds (`codes`): N_P sinus (P wave), N_NO_P AF-conducted (no P), V ventricular.
PVCs are chosen among the baseline's sinus beats (never a block's first): at random with
probability `pvc_rate` (never two in a row: a beat is drawn with q, q(1 - q) = pvc_rate, and
kept unless the beat before it was drawn too), or every odd beat for bigeminy (blocks then
hold an even number of beats, so the pattern never breaks). A PVC comes early, at
coupling * RR after the previous beat, and the beat after it stays where it was: the
compensatory pause (coupling interval + the next one = 2 RR).

Episodes (devices/patient.py) replace the baseline's beats inside their window with their
rhythm's; where two rhythms meet, a beat closer than MIN_RR_S to the one before is dropped.
"""

from __future__ import annotations

import zlib

import numpy as np

from devices.patient import Episode
from devices.profile import PatientProfile

BLOCK_S = 256  # seconds of simulated time per rhythm block
DAY_S = 86_400
GRID_DT = 0.5  # s: the RR process's time step (Nyquist 1 Hz, above the HF band)
MIN_RR_S = 0.22  # where rhythms meet, no two beats closer than this
N_P, N_NO_P, V = 0, 1, 2  # beat codes
SYMBOLS = ("N", "N", "V")  # WFDB beat symbols by code
_OFF = 1 << 32  # keeps negative block numbers non-negative in seed entropy
_NGRID = int(BLOCK_S / GRID_DT)
_SEG = 2 * _NGRID
_FREQS = np.fft.rfftfreq(_SEG, GRID_DT)


def _gauss(f: np.ndarray, mu: float, sd: float) -> np.ndarray:
    out: np.ndarray = np.exp(-0.5 * ((f - mu) / sd) ** 2) / np.sqrt(2 * np.pi * sd**2)
    return out


_AMP = np.sqrt(0.5 * _gauss(_FREQS, 0.1, 0.01) + 1.0 * _gauss(_FREQS, 0.25, 0.01))
_WIN = np.sin(np.pi * np.arange(_SEG + 1) / _SEG)
_GRID_T = np.arange(_NGRID + 1) * GRID_DT


def tag(name: str) -> int:
    """A stable 32-bit tag for a process or draw name."""
    return zlib.crc32(name.encode())


def rng_for(seed: int, *parts: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *(int(p) + _OFF for p in parts)])


class _Sinus:
    """The sinus RR process of one (seed, tag): beat times of block j (module docstring)."""

    def __init__(self, seed: int, tag_: int, hr_bpm: float, hrv: float, even: bool) -> None:
        self.seed, self.tag = seed, tag_
        self.rr_mean = 60.0 / hr_bpm
        self.rr_std = 60.0 * hrv / hr_bpm**2
        self.even = even

    def _segment(self, s: int) -> np.ndarray:
        """Segment s of the RR process, made again when asked: a block needs two, once every
        BLOCK_S simulated seconds (two inverse FFTs of _SEG points), and keeping them would
        cost every device 4 KB (bench/fleet_memory.py)."""
        ph = rng_for(self.seed, self.tag, s).uniform(0.0, 2 * np.pi, _FREQS.size)
        x = np.fft.irfft(_AMP * np.exp(1j * ph), _SEG)
        seg: np.ndarray = (x / x.std()).astype(np.float16)  # as it was cached: the same beat times
        return seg

    def block(self, j: int) -> np.ndarray:
        prev, cur = self._segment(j - 1), self._segment(j)
        m = np.empty(_NGRID + 1)
        m[:_NGRID] = prev[_NGRID:] * _WIN[_NGRID:_SEG] + cur[:_NGRID] * _WIN[:_NGRID]
        m[_NGRID] = cur[_NGRID]
        rr = np.maximum(self.rr_mean + self.rr_std * m, 0.6 * self.rr_mean)
        f = 1.0 / rr
        phase = np.concatenate(([0.0], np.cumsum((f[1:] + f[:-1]) * (GRID_DT / 2))))
        total = float(phase[-1])
        n = max(2, 2 * round(total / 2)) if self.even else max(1, round(total))
        phase *= n / total
        times: np.ndarray = j * BLOCK_S + np.interp(np.arange(n), phase, _GRID_T)
        return times


class _Af:
    """Irregularly irregular: i.i.d. gamma RR, coefficient of variation `cv`."""

    def __init__(self, seed: int, tag_: int, hr_bpm: float, cv: float) -> None:
        self.seed, self.tag = seed, tag_
        self.rr_mean = 60.0 / hr_bpm
        self.k = 1.0 / cv**2

    def block(self, j: int) -> np.ndarray:
        n = max(1, round(BLOCK_S / self.rr_mean))
        rr = rng_for(self.seed, self.tag, j).gamma(self.k, self.rr_mean / self.k, n)
        rr = np.maximum(rr, 0.45 * self.rr_mean)
        rr *= BLOCK_S / rr.sum()
        return j * BLOCK_S + np.concatenate(([0.0], np.cumsum(rr[:-1])))


class BeatModel:
    """One device's beats (module docstring): `beats(t0, t1)` and `episodes(t0, t1)`."""

    def __init__(self, profile: PatientProfile) -> None:
        self.profile = profile
        r = profile.rhythm
        self.seed = profile.seed
        bigeminy = r.pvc_pattern == "bigeminy" and r.pvc_rate > 0
        if r.rhythm == "af":
            self._base: _Sinus | _Af = _Af(self.seed, tag("af"), profile.hr_bpm, r.irregularity)
            self._base_code = N_NO_P
        else:
            self._base = _Sinus(self.seed, tag("sinus"), profile.hr_bpm, profile.hrv, bigeminy)
            self._base_code = N_P
        self.coupling = float(rng_for(self.seed, tag("coupling")).uniform(0.55, 0.7))
        self._bigeminy = bigeminy
        self._procs: dict[str, _Sinus | _Af] = {}
        self._blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._days: dict[int, list[Episode]] = {}

    # --- episodes -----------------------------------------------------------------------

    def _random_day(self, d: int) -> list[Episode]:
        out = self._days.get(d)
        if out is None:
            out = []
            for rule in self.profile.rhythm.random_episodes:
                ep = rule.template
                rng = rng_for(self.seed, tag("random:" + ep.kind), d)
                count = int(rng.poisson(rule.per_day))
                starts = d * DAY_S + rng.uniform(0.0, DAY_S, count)
                lengths = rng.uniform(rule.min_s, rule.max_s, count)
                modes = rng.choice(["flat", "saturated"], count)
                for s, ln, mode in zip(starts, lengths, modes, strict=True):
                    e = ep.moved(round(float(s), 3), round(float(s + ln), 3))
                    if e.artifact == "lead-off" and ep.mode not in ("flat", "saturated"):
                        e = Episode(e.kind, e.start, e.end, e.label, None, e.artifact,
                                    mode=str(mode))
                    out.append(e)
            if len(self._days) >= 4:
                self._days.pop(next(iter(self._days)))
            self._days[d] = out
        return out

    def episodes(self, t0: float, t1: float) -> list[Episode]:
        """Every episode (scheduled or random) overlapping [t0, t1), by start."""
        found = [e for e in self.profile.episodes if e.start < t1 and e.end > t0]
        if self.profile.rhythm.random_episodes:
            for d in range(int(t0 // DAY_S) - 1, int(t1 // DAY_S) + 1):
                found += [e for e in self._random_day(d) if e.start < t1 and e.end > t0]
        return sorted(found, key=lambda e: (e.start, e.kind))

    # --- beats --------------------------------------------------------------------------

    def _proc(self, e: Episode) -> _Sinus | _Af:
        key = f"{e.kind}:{e.rhythm}:{e.hr_bpm}:{e.irregularity}"
        p = self._procs.get(key)
        if p is None:
            if e.rhythm == "af":
                p = _Af(self.seed, tag(key), e.hr_bpm, e.irregularity)
            else:
                p = _Sinus(self.seed, tag(key), e.hr_bpm, 1.5, even=False)
            self._procs[key] = p
        return p

    def _pvcs(self, j: int, t: np.ndarray, codes: np.ndarray) -> None:
        r = self.profile.rhythm
        if r.pvc_rate <= 0 or t.size < 2:
            return
        k = np.arange(t.size)
        if self._bigeminy:
            pvc = k % 2 == 1
        else:
            # a beat is a PVC if drawn and its predecessor was not: q(1-q) = pvc_rate
            q = (1.0 - np.sqrt(1.0 - 4.0 * r.pvc_rate)) / 2.0
            drawn = rng_for(self.seed, tag("pvc"), j).random(t.size) < q
            pvc = drawn & (k >= 1)
            pvc[1:] &= ~drawn[:-1]
        idx = np.flatnonzero(pvc)
        t[idx] = t[idx - 1] + self.coupling * (t[idx] - t[idx - 1])
        codes[idx] = V

    def block(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Beat times (s) and codes of block j: baseline, PVCs, then episodes."""
        hit = self._blocks.get(j)
        if hit is not None:
            return hit
        t = self._base.block(j)
        codes = np.full(t.size, self._base_code, dtype=np.int8)
        self._pvcs(j, t, codes)
        t0, t1 = j * BLOCK_S, (j + 1) * BLOCK_S
        windows = [e for e in self.episodes(t0, t1) if e.rhythm is not None]
        for e in windows:
            keep = (t < e.start) | (t >= e.end)
            t, codes = t[keep], codes[keep]
            if e.rhythm != "pause":
                et = self._proc(e).block(j)
                et = et[(et >= e.start) & (et < e.end)]
                code = V if e.rhythm == "vt" else N_NO_P
                t = np.concatenate((t, et))
                codes = np.concatenate((codes, np.full(et.size, code, dtype=np.int8)))
        if windows:
            order = np.argsort(t, kind="stable")
            t, codes = t[order], codes[order]
            close = np.flatnonzero(np.diff(t) < MIN_RR_S)
            while close.size:
                drop = close[0] + 1
                t, codes = np.delete(t, drop), np.delete(codes, drop)
                close = np.flatnonzero(np.diff(t) < MIN_RR_S)
        if len(self._blocks) >= 2:  # beats() spans at most two blocks (memory: a few KB a device)
            self._blocks.pop(next(iter(self._blocks)))
        self._blocks[j] = (t, codes)
        return t, codes

    def beats(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Beat times and codes in [t0, t1)."""
        parts = [self.block(j) for j in range(int(t0 // BLOCK_S), int(-(-t1 // BLOCK_S)))]
        if not parts:
            return np.empty(0), np.empty(0, dtype=np.int8)
        t = np.concatenate([p[0] for p in parts])
        c = np.concatenate([p[1] for p in parts])
        lo, hi = np.searchsorted(t, [t0, t1])
        return t[lo:hi], c[lo:hi]
