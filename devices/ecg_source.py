"""Where a device's ECG samples come from: a loopable signal bank, sliced per device.

Generating ECG per device would be far too slow (ecgsyn runs about 100x real time), so a
fleet generates ONE signal per distinct (heart rate, HRV) pair, the *bank*, and every
device reads it from its own start offset and adds its own noise (`EcgStream`). Slicing
costs nanoseconds per sample, so one core can feed thousands of devices.

Two sources produce banks:

- `EcgsynSource` (the default of the fleet): neurokit2's `ecg_simulate(method="ecgsyn")`,
  imported lazily (the import takes about 4 s) and only when a bank is not cached yet.
  Banks are cached as .npy files under `DIR/fleet/ecg-cache/`, so a restart is fast.
- `SyntheticSource`: a cheap, exactly periodic sum-of-gaussians beat train (P, Q, R, S, T)
  with no neurokit2, for unit tests and for large fleets that only exercise the transport.

A bank must loop without a jump: `loopable()` cuts it at two R peaks and removes the small
difference between them with a linear ramp, so wrapping from the end to the start is an
ordinary sample-to-sample step in the middle of a beat's upstroke.

Samples leave as int16 counts of `GAIN_UV` microvolts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import find_peaks

from devices.errors import EcgSourceError
from devices.profile import PatientProfile

GAIN_UV = 2.5  # microvolts per LSB: int16 covers +-81.9 mV, an ECG spans about +-1.5 mV
BANK_SECONDS = 20.0  # how much signal one bank holds before it loops
CACHE_VERSION = 1  # bump when the bank recipe changes, so stale cache files are ignored
_ECGSYN_ATTEMPTS = 6  # ecgsyn occasionally produces a malformed beat; retry with another state
_TRANSIENT_S = 1.0  # ecgsyn's ODE starts from an arbitrary state; skip its first second


class EcgSource(Protocol):
    """Something that can produce a loopable bank (float32 millivolts) per (hr, hrv)."""

    name: str
    sample_rate: int

    def bank(self, hr_bpm: float, hrv: float) -> np.ndarray: ...


def find_r_peaks(x_mv: np.ndarray, sample_rate: int) -> np.ndarray:
    """Indices of R peaks: narrow peaks that survive removing a 0.2-s running median.

    The running median follows the wide P and T waves and the baseline, so what is left
    is dominated by the QRS complex; a threshold at half the top percentile and a
    refractory distance of 0.3 s (200 bpm) pick one peak per beat.
    """
    x = np.asarray(x_mv, dtype=np.float64)
    size = int(0.2 * sample_rate) | 1
    hp = x - median_filter(x, size=size, mode="nearest")
    top = float(np.percentile(hp, 99.5))
    if not top > 0:
        return np.empty(0, dtype=np.intp)
    peaks, _ = find_peaks(hp, height=0.5 * top, distance=max(1, int(0.3 * sample_rate)))
    return np.asarray(peaks, dtype=np.intp)


def loopable(x_mv: np.ndarray, sample_rate: int, hr_bpm: float) -> np.ndarray:
    """Cut `x_mv` between its first R peak (after the start transient) and its last one.

    The cut keeps whole beats, so the end runs into the start at the same cardiac phase.
    A linear ramp then removes the difference between the two cut peaks. Raises
    EcgSourceError if the signal has irregular or uneven beats or the wrong rate, which
    ecgsyn produces now and then (a plateau instead of a beat, one oversized R wave).
    """
    x = np.asarray(x_mv, dtype=np.float64)
    peaks = find_r_peaks(x, sample_rate)
    peaks = peaks[peaks >= int(_TRANSIENT_S * sample_rate)]
    if len(peaks) < 3:
        raise EcgSourceError(f"only {len(peaks)} R peaks found; cannot cut a loopable bank")
    rr = np.diff(peaks) / sample_rate
    med = float(np.median(rr))
    if np.any(rr < 0.6 * med) or np.any(rr > 1.5 * med):
        raise EcgSourceError(f"irregular beats (RR {rr.min():.3f}..{rr.max():.3f} s)")
    amp = x[peaks]
    med_amp = float(np.median(amp))
    if np.any(amp > 1.25 * med_amp) or np.any(amp < 0.75 * med_amp):
        raise EcgSourceError(f"uneven R waves ({amp.min():.2f}..{amp.max():.2f} mV)")
    measured = 60.0 / float(np.mean(rr))
    if abs(measured - hr_bpm) > 3.0:
        raise EcgSourceError(f"bank beats at {measured:.1f} bpm, not {hr_bpm:g}")
    p0, pk = int(peaks[0]), int(peaks[-1])
    seg = x[p0:pk].copy()
    ramp = (float(x[pk]) - float(x[p0])) * np.arange(seg.size) / seg.size
    return (seg - ramp).astype(np.float32)


def _bank_random_state(seed: int, hr_bpm: float, hrv: float, attempt: int) -> int:
    entropy = [int(seed), round(hr_bpm * 100), round(hrv * 100), attempt]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class EcgsynSource:
    """Banks from neurokit2's ecgsyn model, cached on disk (see the module docstring)."""

    name = "ecgsyn"

    def __init__(
        self, sample_rate: int, seed: int, cache_dir: Path | None = None,
        seconds: float = BANK_SECONDS,
    ) -> None:
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.cache_dir = cache_dir
        self.seconds = float(seconds)
        self._banks: dict[tuple[float, float], np.ndarray] = {}
        self.generated = 0  # banks computed by ecgsyn (not read from the cache), for tests/logs
        self.attempts = 0  # ecgsyn calls, including rejected signals

    def _cache_path(self, hr_bpm: float, hrv: float) -> Path | None:
        if self.cache_dir is None:
            return None
        name = (
            f"ecgsyn-v{CACHE_VERSION}-hr{hr_bpm:g}-hrv{hrv:g}-fs{self.sample_rate}"
            f"-s{self.seconds:g}-seed{self.seed}.npy"
        )
        return self.cache_dir / name

    def bank(self, hr_bpm: float, hrv: float) -> np.ndarray:
        key = (float(hr_bpm), float(hrv))
        if key in self._banks:
            return self._banks[key]
        path = self._cache_path(*key)
        bank = _load_bank(path) if path is not None else None
        if bank is None:
            bank = self._generate(*key)
            if path is not None:
                _save_bank(path, bank)
        self._banks[key] = bank
        return bank

    def _generate(self, hr_bpm: float, hrv: float) -> np.ndarray:
        problems = []
        for attempt in range(_ECGSYN_ATTEMPTS):
            self.attempts += 1
            state = _bank_random_state(self.seed, hr_bpm, hrv, attempt)
            x = ecgsyn(self.seconds + 2 * _TRANSIENT_S, self.sample_rate, hr_bpm, hrv, state)
            try:
                bank = loopable(x, self.sample_rate, hr_bpm)
            except EcgSourceError as exc:
                problems.append(str(exc))
                continue
            self.generated += 1
            return bank
        raise EcgSourceError(
            f"ecgsyn gave no usable signal for {hr_bpm:g} bpm (hrv {hrv:g}) in "
            f"{_ECGSYN_ATTEMPTS} attempts: {'; '.join(problems)}"
        )


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


def _load_bank(path: Path) -> np.ndarray | None:
    try:
        bank: np.ndarray = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if bank.ndim != 1 or bank.dtype != np.float32 or bank.size < 2 or not np.all(np.isfinite(bank)):
        return None
    return bank


def _save_bank(path: Path, bank: np.ndarray) -> None:
    """Write atomically: a fleet killed mid-write leaves no half file to load later."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            np.save(fh, bank, allow_pickle=False)
        tmp.replace(path)
    except OSError as exc:
        raise EcgSourceError(f"cannot write ECG cache {path}: {exc}") from exc


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


def make_source(kind: str, sample_rate: int, seed: int, cache_dir: Path | None = None) -> EcgSource:
    """`kind` is "ecgsyn" (the fleet's default) or "synthetic"."""
    if kind == "ecgsyn":
        return EcgsynSource(sample_rate, seed, cache_dir)
    if kind == "synthetic":
        return SyntheticSource(sample_rate, seed)
    raise EcgSourceError(f"unknown ECG source {kind!r} (ecgsyn or synthetic)")


class EcgStream:
    """One device's endless signal: its bank from its own offset, plus its own noise.

    `next_chunk(n)` returns the next n samples as int16 counts of `gain_uv` microvolts;
    consecutive chunks are contiguous, including where the bank wraps around.
    """

    def __init__(self, bank: np.ndarray, *, noise_mv: float, seed: int,
                 gain_uv: float = GAIN_UV) -> None:
        if bank.ndim != 1 or bank.size < 2:
            raise EcgSourceError("an ECG bank must be a one-dimensional array of 2+ samples")
        self._bank = bank
        self._rng = np.random.default_rng(seed)
        self._pos = int(self._rng.integers(bank.size))
        self._noise = float(noise_mv)
        self._scale = 1000.0 / float(gain_uv)
        self.gain_uv = float(gain_uv)

    @classmethod
    def for_profile(cls, profile: PatientProfile, source: EcgSource,
                    gain_uv: float = GAIN_UV) -> EcgStream:
        bank = source.bank(profile.hr_bpm, profile.hrv)
        return cls(bank, noise_mv=profile.noise, seed=profile.seed, gain_uv=gain_uv)

    @property
    def position(self) -> int:
        """Where in the bank the next sample comes from."""
        return self._pos

    def next_chunk(self, n_samples: int) -> np.ndarray:
        idx = np.arange(self._pos, self._pos + n_samples)
        x = np.take(self._bank, idx, mode="wrap").astype(np.float64)
        if self._noise > 0:
            x += self._rng.normal(0.0, self._noise, n_samples)
        self._pos = (self._pos + n_samples) % self._bank.size
        return np.clip(np.rint(x * self._scale), -32768, 32767).astype(np.int16)
