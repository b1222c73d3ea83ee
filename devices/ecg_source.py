"""Where a device's ECG samples come from: each device its own signal, that never repeats.

A device's signal is a pure function of the absolute sample index n (time n / fs in
simulated Unix seconds) and its profile (devices/profile.py):

    beats       devices/rhythm.py: R-peak times and kinds (sinus with ecgsyn's LF/HF RR
                process, AF, PVCs, bigeminy, episodes), reachable at any time by block
    morphology  devices/templates.py: neurokit2 ecgsyn beats, computed once per morphology
                and cached on disk. Each device draws one normal beat (and its P-less twin
                for AF) and one ventricular beat from the library, and its own gains for P
                (0.7-1.3), QRS (0.8-1.4) and T (0.6-1.4, at most half the R wave), ventricular
                beats 2.2-3x
    placement   every beat is laid on its R time, its duration scaled with the RR before it
                the way the QT interval is (Bazett): the QRS (+-70 ms) is kept, the ST-T
                part stretched by sqrt(RR), the P-R part by RR**0.3; overlapping beats add
    the rest    devices/artifacts.py: AF f-waves, wander, mains, EMG, motion, lead-off and
                white electrode noise

`PatientModel.render(n0, n)` computes a stretch; `EcgStream` caches RENDER_S-second blocks
of it (aligned on absolute sample numbers) and serves any chunk from them. So the samples
at n are the same whether asked in 1-s chunks, 7-s chunks or at random, and across a fleet
restart (a device asks for the samples of its chunk's own capture time; the stream keeps no
position that a restart could lose). Nothing is shared between devices but the templates.

Cost: a chunk is a slice of a cached block, and a block costs about three vectorised
passes over its samples; bench/ecg_signal.py measures it against ecgsyn per chunk.

`SyntheticSource` (`--ecg-source synthetic`) keeps the old cheap model for transport-only
runs and tests: one exactly periodic sum-of-gaussians bank per (hr, hrv), read at
(n + a per-device offset) modulo its length, plus the same block-seeded noise.

Ground truth: `EcgStream.read` returns, with the samples, the truth segments (rhythm and
artifact windows) it produced for the first time in this process, for the history
(devices/history.py `truth`); `truth_beats(entry, t0, t1)` gives every beat's R time and WFDB
symbol from a fleet/profiles.json entry alone.

Samples leave as int16 counts of `GAIN_UV` microvolts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from devices.artifacts import Components, apply_lead_off
from devices.errors import EcgSourceError
from devices.profile import PatientProfile
from devices.rhythm import N_NO_P, SYMBOLS, BeatModel, V, rng_for, tag
from devices.templates import TEMPLATE_BEFORE, TEMPLATE_FS, TemplateLibrary, load_library, template_times

GAIN_UV = 2.5  # microvolts per LSB: int16 covers +-81.9 mV, an ECG spans about +-1.5 mV
BANK_SECONDS = 20.0  # the synthetic source's bank length before it loops
RENDER_S = 4  # seconds of signal a stream renders at once (aligned on absolute samples)
_QRS_HALF = 0.07  # s either side of the R peak kept unscaled
# rendered blocks a stream keeps: one. The fleet reads forward, so a chunk that straddles two
# blocks finds the first still kept and leaves the second, which the next chunk reads (memory:
# 4 KB a device, measured with bench/fleet_memory.py)
_RENDER_CACHE = 1


@dataclass(frozen=True)
class TruthSegment:
    """A rhythm or artifact window of one device's signal (history `truth` lines)."""

    kind: str  # rhythm | artifact
    label: str
    start: float
    end: float | None  # None: the baseline, until the run ends
    episode: bool
    hr_bpm: float | None = None


@dataclass(frozen=True)
class EcgChunk:
    samples: np.ndarray  # int16 counts
    lead_off: bool  # some of it is a lead-off stretch
    truth: tuple[TruthSegment, ...]  # segments this stream produced for the first time


class SignalModel(Protocol):
    """A device's signal as a function of the absolute sample index."""

    sample_rate: int

    def render(self, n0: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """mV float64 samples n0..n0+n-1, and a lead-off mask (None: no lead-off)."""
        ...

    def baseline(self, since: float) -> list[TruthSegment]: ...

    def segments(self, t0: float, t1: float) -> list[TruthSegment]:
        """Episode segments overlapping [t0, t1)."""
        ...


class EcgSource(Protocol):
    name: str
    sample_rate: int

    def model(self, profile: PatientProfile) -> SignalModel: ...


def _region_weights(tt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth P / QRS / T weights over template time (they add up to 1)."""
    ramp = 0.02
    before = np.clip((-_QRS_HALF - tt) / ramp + 0.5, 0.0, 1.0)
    after = np.clip((tt - _QRS_HALF) / ramp + 0.5, 0.0, 1.0)
    return before, 1.0 - before - after, after


def device_templates(library: TemplateLibrary, seed: int) -> np.ndarray:
    """(3, L) float64: the device's sinus, P-less and ventricular beats (module docstring)."""
    rng = rng_for(seed, tag("morphology"))
    i = int(rng.integers(library.normal.shape[0]))
    v = int(rng.integers(library.ventricular.shape[0]))
    g_p, g_qrs, g_t = rng.uniform(0.7, 1.3), rng.uniform(0.8, 1.4), float(rng.uniform(0.6, 1.4))
    g_v = rng.uniform(2.2, 3.0)
    tt = template_times()
    w_p, w_qrs, w_t = _region_weights(tt)
    beat = library.normal[i]
    r_wave = g_qrs * float(np.max(beat[np.abs(tt) < 0.03]))
    t_wave = float(np.max(np.abs(beat[tt > 0.12])))
    g_t = min(g_t, 0.5 * r_wave / t_wave)  # T at most half of R, as in a usual lead II
    gains = g_p * w_p + g_qrs * w_qrs + g_t * w_t
    return np.stack([library.normal[i] * gains, library.no_p[i] * gains,
                     library.ventricular[v] * g_v * (g_qrs / 1.05)]).astype(np.float64)


_GRIDS: dict[int, np.ndarray] = {}


def _grid(size: int) -> np.ndarray:
    """0..size-1 as float64, shared by every device (np.interp's x-coordinates)."""
    if size not in _GRIDS:
        _GRIDS[size] = np.arange(size, dtype=np.float64)
    return _GRIDS[size]


class PatientModel:
    """One device's ECG (module docstring)."""

    def __init__(self, profile: PatientProfile, library: TemplateLibrary, sample_rate: int) -> None:
        self.profile = profile
        self.sample_rate = int(sample_rate)
        self.beats = BeatModel(profile)
        tmpl = device_templates(library, profile.seed)
        self._length = tmpl.shape[1]
        # memory: one copy per device, as float16 (3 KB): its rounding (at most 1 µV over 200
        # devices' templates, peaks up to 3.1 mV) is below the 2.5-µV count samples are stored in
        self._flat = tmpl.ravel().astype(np.float16)
        self._grid = _grid(self._flat.size)
        self._components = Components(profile.seed, profile.rhythm)
        self._rr_mean = 60.0 / profile.hr_bpm

    def _beats_mv(self, t: np.ndarray) -> np.ndarray:
        bt, codes = self.beats.beats(float(t[0]) - 1.5, float(t[-1]) + 1.0)
        x = np.zeros(t.size)
        if bt.size == 0:
            return x
        rr = np.clip(np.diff(bt, prepend=bt[0] - self._rr_mean), 0.25, 2.0)
        st = 1.0 / np.sqrt(rr)  # ST-T: Bazett
        pr = rr ** -0.3  # P-R: modestly
        base = codes.astype(np.float64) * self._length
        last = bt.size - 1
        k = np.searchsorted(bt, t, side="right") - 1
        top = self._length - 1.0
        for off in (-1, 0, 1):
            i = k + off
            ok = (i >= 0) & (i <= last)
            i = np.clip(i, 0, last)
            tau = t - bt[i]
            u = np.where(tau > _QRS_HALF, _QRS_HALF + (tau - _QRS_HALF) * st[i],
                         np.where(tau < -_QRS_HALF, -_QRS_HALF + (tau + _QRS_HALF) * pr[i], tau))
            g = base[i] + np.clip((u + TEMPLATE_BEFORE) * TEMPLATE_FS, 0.0, top)
            x += np.where(ok, np.interp(g, self._grid, self._flat), 0.0)
        return x

    def render(self, n0: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        fs = self.sample_rate
        idx = np.arange(n0, n0 + n, dtype=np.int64)
        t = idx / fs
        x = self._beats_mv(t)
        white = rng_for(self.profile.seed, tag("noise"), n0 // max(1, n))
        x += self.profile.noise * white.standard_normal(n)
        comp = self._components
        r = self.profile.rhythm
        t0, t1 = float(t[0]), float(t[-1]) + 1.0 / fs
        episodes = self.beats.episodes(t0, t1)
        if r.rhythm == "af":
            x += comp.f_waves(t)
        for e in episodes:
            if e.rhythm == "af":
                inside = (t >= e.start) & (t < e.end)
                x[inside] += comp.f_waves(t[inside])
        comp.add_continuous(x, t, idx, fs, white)
        lead_off: np.ndarray | None = None
        for e in episodes:
            if e.artifact is None:
                continue
            mask = comp.add_episode(x, t, idx, fs, e, white)
            if mask is not None:
                apply_lead_off(x, mask, e.mode)
                lead_off = mask if lead_off is None else (lead_off | mask)
        return x, lead_off

    def baseline(self, since: float) -> list[TruthSegment]:
        p, r = self.profile, self.profile.rhythm
        out = [TruthSegment("rhythm", r.label, since, None, episode=False, hr_bpm=p.hr_bpm)]
        out += [TruthSegment("artifact", label, since, None, episode=False)
                for label, mv in (("wander", r.wander_mv), ("mains", r.mains_mv),
                                  ("emg", r.emg_mv)) if mv > 0]
        return out

    def segments(self, t0: float, t1: float) -> list[TruthSegment]:
        return [TruthSegment("rhythm" if e.rhythm else "artifact", e.label, e.start, e.end,
                             episode=True, hr_bpm=e.hr_bpm if e.rhythm in ("af", "vt") else None)
                for e in self.beats.episodes(t0, t1)]


class PatientSource:
    """Per-device signals from the cached ecgsyn template library (`--ecg-source ecgsyn`)."""

    name = "ecgsyn"

    def __init__(self, sample_rate: int, seed: int, cache_dir: Path | None = None) -> None:
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.cache_dir = cache_dir
        self._library: TemplateLibrary | None = None

    @property
    def library(self) -> TemplateLibrary:
        if self._library is None:
            self._library = load_library(self.cache_dir)
        return self._library

    def model(self, profile: PatientProfile) -> PatientModel:
        return PatientModel(profile, self.library, self.sample_rate)


# (offset from the R peak in s, gaussian width in s, amplitude in mV)
_WAVES = ((-0.17, 0.025, 0.15), (-0.03, 0.010, -0.12), (0.0, 0.012, 1.1),
          (0.03, 0.012, -0.25), (0.25, 0.050, 0.30))


class SyntheticSource:
    """A deterministic beat train: gaussians for P, Q, R, S and T, exactly periodic.

    Beat-to-beat intervals vary with std `hrv` bpm (as a relative RR spread of hrv/hr).
    The train is built on a circle of whole samples, so it loops with no seam at all.
    """

    name = "synthetic"

    def __init__(self, sample_rate: int, seed: int, seconds: float = BANK_SECONDS) -> None:
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.seconds = float(seconds)
        self._banks: dict[tuple[float, float], np.ndarray] = {}

    def bank(self, hr_bpm: float, hrv: float) -> np.ndarray:
        key = (float(hr_bpm), float(hrv))
        if key not in self._banks:
            self._banks[key] = self._build(*key)
        return self._banks[key]

    def _build(self, hr_bpm: float, hrv: float) -> np.ndarray:
        fs = self.sample_rate
        rng = np.random.default_rng(_bank_random_state(self.seed, hr_bpm, hrv, 0))
        n_beats = max(4, round(self.seconds * hr_bpm / 60.0))
        rr = 60.0 / hr_bpm * (1.0 + (hrv / hr_bpm) * rng.standard_normal(n_beats))
        rr = np.clip(rr, 0.5 * 60.0 / hr_bpm, 1.5 * 60.0 / hr_bpm)
        length = round(rr.sum() * fs)
        period = length / fs
        r_times = (np.cumsum(rr) - rr[0]) * (period / rr.sum())  # scaled to whole samples
        t = np.arange(length) / fs
        x = np.zeros(length)
        for offset, width, amp in _WAVES:
            d = t[None, :] - (r_times[:, None] + offset)
            d = (d + period / 2) % period - period / 2  # distance on the circle
            x += amp * np.exp(-0.5 * (d / width) ** 2).sum(axis=0)
        return x.astype(np.float32)


    def model(self, profile: PatientProfile) -> BankModel:
        return BankModel(self.bank(profile.hr_bpm, profile.hrv), profile, self.sample_rate)


def _bank_random_state(seed: int, hr_bpm: float, hrv: float, attempt: int) -> int:
    entropy = [int(seed), round(hr_bpm * 100), round(hrv * 100), attempt]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class BankModel:
    """The synthetic source's signal: its bank at (n + offset) mod length, plus noise."""

    def __init__(self, bank: np.ndarray, profile: PatientProfile, sample_rate: int) -> None:
        if bank.ndim != 1 or bank.size < 2:
            raise EcgSourceError("an ECG bank must be a one-dimensional array of 2+ samples")
        self.sample_rate = int(sample_rate)
        self.profile = profile
        self._bank = bank
        self._offset = int(rng_for(profile.seed, tag("offset")).integers(bank.size))

    def render(self, n0: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        idx = np.arange(n0, n0 + n, dtype=np.int64) + self._offset
        x = np.take(self._bank, idx % self._bank.size).astype(np.float64)
        if self.profile.noise > 0:
            white = rng_for(self.profile.seed, tag("noise"), n0 // max(1, n))
            x += self.profile.noise * white.standard_normal(n)
        return x, None

    def baseline(self, since: float) -> list[TruthSegment]:
        return [TruthSegment("rhythm", self.profile.rhythm.label, since, None, episode=False,
                             hr_bpm=self.profile.hr_bpm)]

    def segments(self, t0: float, t1: float) -> list[TruthSegment]:
        return []


def make_source(kind: str, sample_rate: int, seed: int,
                cache_dir: Path | None = None) -> PatientSource | SyntheticSource:
    """`kind` is "ecgsyn" (the fleet's default: per-device signals) or "synthetic"."""
    if kind == "ecgsyn":
        return PatientSource(sample_rate, seed, cache_dir)
    if kind == "synthetic":
        return SyntheticSource(sample_rate, seed)
    raise EcgSourceError(f"unknown ECG source {kind!r} (ecgsyn or synthetic)")


class EcgStream:
    """One device's endless signal, served from RENDER_S-second blocks of its model.

    `read(n0, n)` gives samples n0..n0+n-1 (absolute sample numbers: time n / fs) as int16
    counts of `gain_uv` microvolts, whether lead-off touches them, and the truth segments
    seen for the first time. `next_chunk(n)` reads on from `position` (tests, benches).
    """

    def __init__(self, model: SignalModel, *, gain_uv: float = GAIN_UV,
                 since: float | None = None, position: int = 0) -> None:
        self.model = model
        self.sample_rate = model.sample_rate
        self.gain_uv = float(gain_uv)
        self._scale = 1000.0 / float(gain_uv)
        self._block = RENDER_S * self.sample_rate
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._since = since
        self._seen: set[tuple[str, str, float]] = set()
        self._baseline_done = False
        self._pos = int(position)

    @classmethod
    def for_profile(cls, profile: PatientProfile, source: EcgSource, gain_uv: float = GAIN_UV,
                    since: float | None = None) -> EcgStream:
        return cls(source.model(profile), gain_uv=gain_uv, since=since)

    @property
    def position(self) -> int:
        """The absolute sample number `next_chunk` reads next."""
        return self._pos

    def seek(self, n: int) -> None:
        self._pos = int(n)

    def index_at(self, t: float) -> int:
        """The sample number of simulated Unix time `t`."""
        return round(t * self.sample_rate)

    def _rendered(self, b: int) -> tuple[np.ndarray, np.ndarray | None]:
        hit = self._cache.get(b)
        if hit is None:
            x, mask = self.model.render(b * self._block, self._block)
            samples = np.clip(np.rint(x * self._scale), -32768, 32767).astype(np.int16)
            hit = (samples, mask)
            if len(self._cache) >= _RENDER_CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[b] = hit
        return hit

    def samples(self, n0: int, n: int) -> tuple[np.ndarray, bool]:
        """Samples n0..n0+n-1 and whether lead-off touches them (no truth bookkeeping)."""
        size = self._block
        b0, b1 = n0 // size, (n0 + n - 1) // size
        if b0 == b1:
            x, mask = self._rendered(b0)
            lo = n0 - b0 * size
            off = bool(mask[lo:lo + n].any()) if mask is not None else False
            return x[lo:lo + n].copy(), off
        parts, off = [], False
        pos, end = n0, n0 + n
        while pos < end:
            b = pos // size
            x, mask = self._rendered(b)
            lo, hi = pos - b * size, min(end - b * size, size)
            parts.append(x[lo:hi])
            off = off or (mask is not None and bool(mask[lo:hi].any()))
            pos = b * size + hi
        return np.concatenate(parts), off

    def read(self, n0: int, n: int) -> EcgChunk:
        samples, lead_off = self.samples(n0, n)
        fs = self.sample_rate
        new: list[TruthSegment] = []
        if not self._baseline_done:
            self._baseline_done = True
            new += self.model.baseline(self._since if self._since is not None else n0 / fs)
        for seg in self.model.segments(n0 / fs, (n0 + n) / fs):
            key = (seg.kind, seg.label, seg.start)
            if key not in self._seen:
                self._seen.add(key)
                new.append(seg)
        return EcgChunk(samples, lead_off, tuple(new))

    def next_chunk(self, n_samples: int) -> np.ndarray:
        x, _ = self.samples(self._pos, n_samples)
        self._pos += n_samples
        return x


def truth_beats(entry: dict[str, Any], t0: float, t1: float) -> list[tuple[float, str]]:
    """Every beat's R-peak time (simulated Unix s) and WFDB symbol ('N', 'V') in [t0, t1),
    from a fleet/profiles.json entry alone (deterministic from its seed)."""
    from devices.profiles_file import profile_from_entry

    times, codes = BeatModel(profile_from_entry(entry)).beats(t0, t1)
    return [(float(t), SYMBOLS[int(c)]) for t, c in zip(times, codes, strict=True)]


__all__ = [
    "GAIN_UV",
    "N_NO_P",
    "EcgChunk",
    "EcgStream",
    "PatientSource",
    "SyntheticSource",
    "TruthSegment",
    "V",
    "ecgsyn",
    "find_r_peaks",
    "make_source",
    "truth_beats",
]


def find_r_peaks(x_mv: np.ndarray, sample_rate: int) -> np.ndarray:
    """Indices of R peaks: narrow peaks that survive removing a 0.2-s running median.

    The running median follows the wide P and T waves and the baseline, so what is left
    is dominated by the QRS complex; a threshold at half the top percentile and a
    refractory distance of 0.3 s (200 bpm) pick one peak per beat.
    """
    from scipy.ndimage import median_filter  # here: importing scipy.signal costs 0.4 s
    from scipy.signal import find_peaks

    x = np.asarray(x_mv, dtype=np.float64)
    size = int(0.2 * sample_rate) | 1
    hp = x - median_filter(x, size=size, mode="nearest")
    top = float(np.percentile(hp, 99.5))
    if not top > 0:
        return np.empty(0, dtype=np.intp)
    peaks, _ = find_peaks(hp, height=0.5 * top, distance=max(1, int(0.3 * sample_rate)))
    return np.asarray(peaks, dtype=np.intp)


def ecgsyn(duration_s: float, sample_rate: int, hr_bpm: float, hrv: float,
           random_state: int) -> np.ndarray:
    """One ecgsyn signal in mV. neurokit2 is imported here, never at module import.

    numpy's global random state is saved and restored around the call, because some
    neurokit2 versions seed it.
    """
    import neurokit2 as nk

    # the legacy global state is what neurokit2 seeds, so it is what must be saved: no Generator
    saved = np.random.get_state()  # noqa: NPY002 -- saving the global state a library alters
    try:
        x = nk.ecg_simulate(
            duration=duration_s, sampling_rate=sample_rate, heart_rate=hr_bpm,
            heart_rate_std=hrv, method="ecgsyn", noise=0.0, random_state=random_state,
        )
    except Exception as exc:  # neurokit2 raises plain ValueErrors and numerical errors
        raise EcgSourceError(f"ecgsyn failed for {hr_bpm:g} bpm: {exc}") from exc
    finally:
        np.random.set_state(saved)  # noqa: NPY002 -- restoring the global state (see above)
    return np.asarray(x, dtype=np.float64)


