"""The beat detector: neurokit2 behind a small adapter (STYLE.md: wrap it, don't imitate it).

    detect(x_mv, sample_rate) -> Detection(peaks, quality)

`peaks` are R-peak sample indices from `nk.ecg_peaks` on `nk.ecg_clean`'s output (neurokit's
own method). `quality` is neurokit2's `ecg_quality(method="templatematch")` (after Orphanidou
et al. 2015: each beat's correlation with the average beat, 0..1, one value per sample; the
same numbers computed on numpy arrays by analysis/templatematch.py, 13x faster), or None
when fewer than MIN_BEATS_FOR_QUALITY beats were found (a template needs a few beats; a
stretch without beats is judged by the rules, not here).

neurokit2 is imported here and only when `detect` first runs (about 1-4 s): the read API
(`analysis.store_view`) and the lab's CLI never pay for it. Its warnings and errors on a
signal it cannot use (too short to filter, constant) are turned into "no beats" rather than
escaping: a reading the detector cannot read is a fact about the reading, not a crash.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.templatematch import templatematch

MIN_BEATS_FOR_QUALITY = 4
MIN_RR_S = 0.25  # neurokit's default 0.3 s caps the rate at 200 bpm: at 220 it found every other beat
MIN_SECONDS = 0.5  # shorter signals are not filtered (the filters' padding needs more)


@dataclass(frozen=True, eq=False)
class Detection:
    peaks: npt.NDArray[np.int64]
    quality: npt.NDArray[np.float64] | None
    cleaned: npt.NDArray[np.float64] | None = None  # nk.ecg_clean's output (None: not filtered)


def _nk() -> Any:
    import neurokit2  # about 1-4 s to import: only in the analysis process, when needed

    return neurokit2


def warm_up() -> None:
    """Import neurokit2 now (the process calls it before it says it is ready)."""
    _nk()


def detect(x_mv: npt.NDArray[np.float64], sample_rate: int) -> Detection:
    """R peaks and the template-match quality of one contiguous signal, in mV."""
    empty = Detection(np.zeros(0, dtype=np.int64), None)
    if len(x_mv) < MIN_SECONDS * sample_rate or not np.all(np.isfinite(x_mv)):
        return empty
    nk = _nk()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurokit's NeuroKitWarning / numpy's empty-slice noise
        try:
            cleaned = np.asarray(nk.ecg_clean(x_mv, sampling_rate=sample_rate), dtype=np.float64)
            _, info = nk.ecg_peaks(cleaned, sampling_rate=sample_rate, mindelay=MIN_RR_S)
            peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
        except (ValueError, IndexError, ZeroDivisionError, TypeError):
            return empty
        peaks = drop_t_waves(cleaned, peaks, sample_rate)
        if len(peaks) < MIN_BEATS_FOR_QUALITY:
            return Detection(peaks, None, cleaned)
        q = _quality(nk, cleaned, peaks, sample_rate)
        if q is None:
            return Detection(peaks, None, cleaned)
        q = _per_morphology(nk, cleaned, peaks, sample_rate, q)
    return Detection(peaks, q if q.shape == x_mv.shape else None, cleaned)


def _quality(nk: Any, cleaned: npt.NDArray[np.float64], peaks: npt.NDArray[np.int64],
             sample_rate: int) -> npt.NDArray[np.float64] | None:
    try:  # = nk.ecg_quality(method="templatematch"), without its DataFrame per beat
        return templatematch(nk, cleaned, peaks, sample_rate)
    except (ValueError, IndexError, ZeroDivisionError, TypeError):
        return None


VENTRICULAR_RATIO = 1.6  # beats this much taller than the shorter class are another morphology
MIN_CLASS_BEATS = 2  # a class this small has an average of its own only when its heights agree
CLASS_CV = 0.15  # ... within this coefficient of variation


def _tight(heights: npt.NDArray[np.float64]) -> bool:
    return float(np.std(heights)) <= CLASS_CV * float(np.mean(heights))


def _per_morphology(nk: Any, cleaned: npt.NDArray[np.float64], peaks: npt.NDArray[np.int64],
                    sample_rate: int, q: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Template-match quality per morphology. neurokit2 matches every beat against ONE average
    beat, so a patient with two kinds of beats (PVCs, bigeminy, the edges of a VT run: wide
    ventricular beats 2-3 times the height of the sinus ones) scores low everywhere although
    each beat is clean. When the beats' heights fall into two classes (the taller at least
    VENTRICULAR_RATIO times the shorter's median, each with MIN_BEATS_FOR_QUALITY beats),
    each class is matched against its own average and each beat keeps the better score. Noise
    gains nothing: its "beats" do not resemble each other whichever way they are grouped.
    In a record's first seconds a bigeminy has 2 or 3 beats of each kind: classes that small
    count only when the heights within each class agree (within CLASS_CV), as a bigeminy's
    do (2.1-2.2 and 0.9-1.0 mV) and noise's do not; a 2-beat average still correlates about
    0.7 with each of two unrelated noise segments, hence the guard."""
    height = np.abs(cleaned[peaks])
    short_median = float(np.median(np.sort(height)[: max(1, len(height) // 2)]))
    tall = height >= VENTRICULAR_RATIO * short_median
    smaller = min(int(tall.sum()), int((~tall).sum()))
    if smaller < MIN_CLASS_BEATS or (smaller < MIN_BEATS_FOR_QUALITY
                                     and not all(_tight(height[c]) for c in (tall, ~tall))):
        return q  # a class too small for an average of its own
    out = q.copy()
    for cls in (tall, ~tall):
        idx = peaks[cls]
        if len(idx) >= MIN_BEATS_FOR_QUALITY:
            qc = _quality(nk, cleaned, idx, sample_rate)
            if qc is not None and qc.shape == q.shape:
                out[idx] = np.maximum(q[idx], qc[idx])
        else:  # neurokit2's template match needs more beats (it derives a rate from them)
            out[idx] = np.maximum(q[idx], _small_class_match(cleaned, idx, sample_rate))
    return out


SMALL_CLASS_WINDOW_S = (0.2, 0.4)  # around each R peak: the QRS and the start of the T wave


def _small_class_match(cleaned: npt.NDArray[np.float64], idx: npt.NDArray[np.int64],
                       sample_rate: int) -> npt.NDArray[np.float64]:
    """Each beat's correlation with its class's average beat, the way neurokit2's template
    match scores (Orphanidou et al. 2015), for a class of 2 or 3 beats: windows of
    SMALL_CLASS_WINDOW_S around the R peaks (beats too near the signal's edges score 0)."""
    before = round(SMALL_CLASS_WINDOW_S[0] * sample_rate)
    after = round(SMALL_CLASS_WINDOW_S[1] * sample_rate)
    inside = (idx >= before) & (idx + after <= len(cleaned))
    scores = np.zeros(len(idx), dtype=np.float64)
    if int(inside.sum()) < MIN_CLASS_BEATS:
        return scores
    segs = np.stack([cleaned[i - before : i + after] for i in idx[inside].tolist()])
    template = segs.mean(axis=0)
    scores[inside] = [float(np.corrcoef(seg, template)[0, 1]) for seg in segs]
    return np.nan_to_num(scores)


TINY_RATIO = 0.25  # a "beat" under a quarter of its neighbours' median height is not one
STEADY_CV = 0.25  # neighbours' heights vary less than this (a steady ECG, not noise)
T_WAVE_ZONE_S = 0.45  # a "beat" this soon after a beat may be its T wave ...
T_WAVE_RATIO = 0.5  # ... when it is less than half that beat's height ...
SLOW_RR_S = 0.8  # ... and the rhythm around it is slower than 75 bpm


def drop_t_waves(cleaned: npt.NDArray[np.float64], peaks: npt.NDArray[np.int64],
                 sample_rate: int) -> npt.NDArray[np.int64]:
    """Remove peaks that are not beats. At 30-40 bpm neurokit2's adaptive threshold sinks in
    the long flat diastoles, and it sometimes marks a T wave, or a point of the flat baseline,
    as a beat: that turns a bradycardia's regular RR series into an irregular one (a false
    suspected AF) and raises its rate. Two rules (the constants above):
    - tiny: a peak under TINY_RATIO of the median height of the taller half of its
      neighbours (up to 8 kept peaks each side) is baseline: a flat diastole, or a pause;
    - T wave: soon after the previous beat and under half its height, in a slow rhythm (the
      neighbours' median RR above SLOW_RR_S): a fast rhythm (tachycardia, AF) keeps its beats,
      and a PVC is taller than the beat before it.
    Neither applies where the taller neighbours vary by more than STEADY_CV (noise or an
    artifact: the quality rules judge those)."""
    if len(peaks) < 3:
        return peaks
    height = np.abs(cleaned[peaks])
    keep = np.ones(len(peaks), dtype=bool)
    zone = T_WAVE_ZONE_S * sample_rate
    for k in range(len(peaks)):
        idx = [j for j in range(max(0, k - 8), min(len(peaks), k + 9)) if j != k and keep[j]]
        if len(idx) < 4:
            continue
        top = np.sort(height[idx])[len(idx) // 2:]  # the taller half of the neighbours: the beats
        if float(np.std(top)) > STEADY_CV * float(np.mean(top)):
            continue  # no steady beats around: noise or artifact, judged by the quality rules
        ref = float(np.median(top))
        if height[k] < TINY_RATIO * ref:
            keep[k] = False  # baseline (a flat diastole, a pause), at any rate
            continue
        beats = np.asarray([peaks[j] for j in idx if height[j] >= TINY_RATIO * ref])
        slow = len(beats) >= 3 and float(np.median(np.diff(beats))) > SLOW_RR_S * sample_rate
        prev = k - 1
        while prev > 0 and not keep[prev]:
            prev -= 1
        if slow and k > 0 and peaks[k] - peaks[prev] <= zone and height[k] < T_WAVE_RATIO * height[prev]:
            keep[k] = False
    return peaks[keep]
