"""Beat templates: neurokit2's ecgsyn morphology, generated once and cached on disk.

A template is one heartbeat in mV, sampled at `TEMPLATE_FS` on `TEMPLATE_SPAN` seconds
around its R peak (-0.35 .. +0.65 s), as ecgsyn draws it at 60 bpm. The library holds:

    normal      `N_MORPHOLOGIES` sinus beats: ecgsyn's P Q R S T extrema with their angles,
                heights and widths (`ti`, `ai`, `bi`) each drawn within +-5 deg / +-20 %
                of neurokit2's defaults (seeded by LIBRARY_SEED, so every machine builds the
                same library)
    no_p        the same beats with the P wave's height set to 0 (atrial fibrillation: the
                atria do not contract as one, there is no P wave)
    ventricular `V_MORPHOLOGIES` ectopic beats: no P, Q/R/S about 2x wider than the sinus
                beats', a deep S, T opposite to the QRS and larger (PVCs and ventricular
                tachycardia); the device scales them 2.2-3x (PVCs are tall, and a smaller
                one goes unseen by a 5-20 Hz energy detector such as wfdb's XQRS)

Each beat is cut from a 10-s ecgsyn run (the median of its middle beats, aligned on the R
peak), its slowly relaxing ODE baseline is removed with a line through its two ends, and its
ends taper to exactly 0, so beats can be summed on a flat baseline (devices/ecg_source.py).

The library is computed once (neurokit2 imported lazily, about 4 s; ecgsyn about 0.05 s per
template) and cached as one .npz file whose name holds LIBRARY_VERSION: bump it when the
recipe changes, so stale files are ignored. It is written atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices.errors import EcgSourceError

TEMPLATE_FS = 500  # Hz
TEMPLATE_BEFORE = 0.35  # s before the R peak
TEMPLATE_AFTER = 0.65  # s after it
TEMPLATE_SPAN = TEMPLATE_BEFORE + TEMPLATE_AFTER
N_MORPHOLOGIES = 8
V_MORPHOLOGIES = 4
LIBRARY_VERSION = 3  # 3: beats cut above a median baseline
LIBRARY_SEED = 20031  # McSharry et al. 2003, for the record
_TI = np.array([-70.0, -15.0, 0.0, 15.0, 100.0])  # neurokit2's ecgsyn defaults: P Q R S T
_AI = np.array([1.2, -5.0, 30.0, -7.5, 0.75])
_BI = np.array([0.25, 0.1, 0.1, 0.1, 0.4])
_TAPER_S = 0.02


@dataclass(frozen=True)
class TemplateLibrary:
    """normal, no_p: (N_MORPHOLOGIES, L) float32 mV; ventricular: (V_MORPHOLOGIES, L)."""

    normal: np.ndarray
    no_p: np.ndarray
    ventricular: np.ndarray

    def __post_init__(self) -> None:
        length = round(TEMPLATE_SPAN * TEMPLATE_FS) + 1
        for name in ("normal", "no_p", "ventricular"):
            a = getattr(self, name)
            if a.ndim != 2 or a.shape[1] != length or not np.all(np.isfinite(a)):
                raise EcgSourceError(f"template library: {name} has shape {a.shape}, "
                                     f"not (n, {length})")


def template_times() -> np.ndarray:
    """Seconds from the R peak of each template sample."""
    return np.arange(round(TEMPLATE_SPAN * TEMPLATE_FS) + 1) / TEMPLATE_FS - TEMPLATE_BEFORE


def _params(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ti = _TI + rng.uniform(-5.0, 5.0, 5) * np.array([1, 0.4, 0, 0.4, 1])
    ai = _AI * rng.uniform(0.8, 1.2, 5)
    bi = _BI * rng.uniform(0.85, 1.15, 5)
    return ti, ai, bi


def _ventricular(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ti = np.array([-70.0, -22.0, 0.0, 22.0, 110.0]) + rng.uniform(-5, 5, 5) * np.array([0, 1, 0, 1, 1])
    ai = np.array([0.0, -3.0, 30.0, -12.0, -1.6]) * rng.uniform(0.85, 1.15, 5)
    bi = np.array([0.25, 0.18, 0.2, 0.18, 0.5]) * rng.uniform(0.9, 1.1, 5)
    return ti, ai, bi


def _cut(x: np.ndarray) -> np.ndarray:
    """The median beat of a 60-bpm ecgsyn run at TEMPLATE_FS, baseline-corrected and tapered."""
    from scipy.ndimage import median_filter
    from scipy.signal import find_peaks

    fs = TEMPLATE_FS
    # ecgsyn's output can wander far from its baseline (seen with scipy 1.17: a run whose last
    # 3 s sat 0.4 mV higher, so only 2 R peaks reached half the run's maximum): a median over one
    # beat (60 bpm) is the baseline; the R peaks are found, and the beats cut, above it
    x = x - median_filter(x, size=fs + 1, mode="nearest")
    peaks, _ = find_peaks(x, height=0.5 * float(np.max(x)), distance=int(0.5 * fs))
    before, after = round(TEMPLATE_BEFORE * fs), round(TEMPLATE_AFTER * fs)
    peaks = peaks[(peaks >= fs + before) & (peaks + after < x.size - fs // 2)]  # skip the transient
    if len(peaks) < 3:
        raise EcgSourceError(f"ecgsyn gave {len(peaks)} usable beats for a template")
    beats = np.stack([x[p - before:p + after + 1] for p in peaks])
    beat = np.median(beats, axis=0)
    edge = round(0.03 * fs)
    left, right = float(np.mean(beat[:edge])), float(np.mean(beat[-edge:]))
    beat = beat - np.linspace(left, right, beat.size)
    taper = round(_TAPER_S * fs)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, taper))
    beat[:taper] *= ramp
    beat[-taper:] *= ramp[::-1]
    beat[0] = beat[-1] = 0.0
    out: np.ndarray = beat.astype(np.float32)
    return out


def _ecgsyn_beat(ti: np.ndarray, ai: np.ndarray, bi: np.ndarray, state: int) -> np.ndarray:
    import neurokit2 as nk

    saved = np.random.get_state()  # noqa: NPY002 -- saving the global state neurokit2 may seed
    try:
        x = nk.ecg_simulate(duration=10, sampling_rate=TEMPLATE_FS, heart_rate=60,
                            heart_rate_std=0, method="ecgsyn", noise=0.0, random_state=state,
                            ti=tuple(ti), ai=tuple(ai), bi=tuple(bi))
    except Exception as exc:  # neurokit2 raises plain ValueErrors and numerical errors
        raise EcgSourceError(f"ecgsyn failed for a template: {exc}") from exc
    finally:
        np.random.set_state(saved)  # noqa: NPY002 -- restoring the global state (see above)
    return _cut(np.asarray(x, dtype=np.float64))


def build_library() -> TemplateLibrary:
    """Run ecgsyn once per morphology (module docstring). About 1 s plus neurokit2's import."""
    rng = np.random.default_rng(LIBRARY_SEED)
    normal, no_p = [], []
    for i in range(N_MORPHOLOGIES):
        ti, ai, bi = _params(rng)
        beat = _ecgsyn_beat(ti, ai, bi, i)
        normal.append(beat)
        ai_no_p = ai.copy()
        ai_no_p[0] = 0.0
        twin = _ecgsyn_beat(ti, ai_no_p, bi, i)
        # the same QRS without its P wave: ecgsyn scales each run by its own extremes (a run that
        # wandered came out at 0.6 of its twin's height), so the R peaks are made equal
        no_p.append((twin * (float(beat.max()) / float(twin.max()))).astype(np.float32))
    ventricular = [_ecgsyn_beat(*_ventricular(rng), 100 + i) for i in range(V_MORPHOLOGIES)]
    return TemplateLibrary(np.stack(normal), np.stack(no_p), np.stack(ventricular))


def library_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / (f"beat-templates-v{LIBRARY_VERSION}-fs{TEMPLATE_FS}"
                              f"-n{N_MORPHOLOGIES}-v{V_MORPHOLOGIES}.npz")


_LOADED: dict[Path | None, TemplateLibrary] = {}


def load_library(cache_dir: Path | None) -> TemplateLibrary:
    """The library from `cache_dir` (built and saved there if absent or unreadable); kept in
    memory per process. `cache_dir` None: built in memory only."""
    if cache_dir in _LOADED:
        return _LOADED[cache_dir]
    lib = _read(library_path(cache_dir)) if cache_dir is not None else None
    if lib is None:
        lib = build_library()
        if cache_dir is not None:
            _write(library_path(cache_dir), lib)
    _LOADED[cache_dir] = lib
    return lib


def _read(path: Path) -> TemplateLibrary | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return TemplateLibrary(z["normal"], z["no_p"], z["ventricular"])
    except (OSError, ValueError, KeyError, EcgSourceError):
        return None


def _write(path: Path, lib: TemplateLibrary) -> None:
    """Atomically: a process killed mid-write leaves no half file to load later."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, normal=lib.normal, no_p=lib.no_p, ventricular=lib.ventricular)
        tmp.replace(path)
    except OSError as exc:
        raise EcgSourceError(f"cannot write the beat templates {path}: {exc}") from exc
