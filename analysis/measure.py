"""What a handheld monitor prints beside one reading: beats, heart rate and the PR, QRS and QT
intervals, from neurokit2's detector and its wavelet delineation (`ecg_delineate`, "dwt").

    measure(samples_mv, sample_rate) -> {"beats": [sample indices], "hr_bpm": float | None,
                                         "pr_ms": ..., "qrs_ms": ..., "qt_ms": ...}

The heart rate is 60 / the interquartile mean of the RR intervals (analysis.rules.typical_rr,
as the rate rules use it: in bigeminy the median is one of two alternating intervals). Each
interval is the median over the beats where the delineation found both of its ends:
PR = QRS onset − P onset, QRS = QRS offset − QRS onset, QT = T offset − QRS onset. None where it
cannot tell (fewer than 2 beats for HR; no beat with both ends for an interval; a signal the
delineation refuses). The numbers are neurokit's: on ecgsyn's beat shape its wavelet QRS
boundaries read 148-188 ms at 60-100 bpm, wider than the 80-96 ms between its Q and S peaks.
neurokit2 is imported when this runs (about 1-4 s), never at import.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.detect import detect
from analysis.rules import typical_rr


def _median_ms(starts: Any, ends: Any, sample_rate: int) -> float | None:
    s = np.asarray(starts, dtype=np.float64)
    e = np.asarray(ends, dtype=np.float64)
    if s.shape != e.shape or s.size == 0:
        return None
    d = (e - s)[np.isfinite(e - s) & (e > s)]
    return round(float(np.median(d)) * 1000.0 / sample_rate, 1) if d.size else None


def _delineate(x_mv: npt.NDArray[np.float64], peaks: npt.NDArray[np.int64],
               sample_rate: int) -> dict[str, Any]:
    import neurokit2 as nk  # about 1-4 s to import: only when a measurement is asked for

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cleaned = nk.ecg_clean(x_mv, sampling_rate=sample_rate)
            _, waves = nk.ecg_delineate(cleaned, peaks, sampling_rate=sample_rate, method="dwt")
        except (ValueError, IndexError, ZeroDivisionError, TypeError, KeyError):
            return {}
    return dict(waves)


def measure(samples_mv: npt.NDArray[np.float64], sample_rate: int) -> dict[str, Any]:
    """Beats (sample indices), hr_bpm and pr_ms/qrs_ms/qt_ms of one reading; None where unknown."""
    x = np.asarray(samples_mv, dtype=np.float64)
    peaks = detect(x, sample_rate).peaks
    out: dict[str, Any] = {"beats": [int(p) for p in peaks], "hr_bpm": None,
                           "pr_ms": None, "qrs_ms": None, "qt_ms": None}
    if peaks.size >= 2:
        rr = np.diff(peaks).astype(np.float64)  # the rules' interquartile mean: bigeminy's
        out["hr_bpm"] = round(60.0 * sample_rate / float(typical_rr(rr)), 1)  # two RRs both count
    if peaks.size == 0:
        return out
    w = _delineate(x, peaks, sample_rate)
    if not w:
        return out
    out["pr_ms"] = _median_ms(w.get("ECG_P_Onsets", []), w.get("ECG_R_Onsets", []), sample_rate)
    out["qrs_ms"] = _median_ms(w.get("ECG_R_Onsets", []), w.get("ECG_R_Offsets", []), sample_rate)
    out["qt_ms"] = _median_ms(w.get("ECG_R_Onsets", []), w.get("ECG_T_Offsets", []), sample_rate)
    return out
