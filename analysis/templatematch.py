"""neurokit2's template-match quality index, computed on numpy arrays.

    templatematch(nk, cleaned, peaks, sample_rate) -> per-sample quality (0..1)

The same numbers as `nk.ecg_quality(cleaned, rpeaks=peaks, sampling_rate=...,
method="templatematch")` (after Orphanidou et al. 2015), step for step:

1. the mean heart rate, `nk.signal_rate` over the whole signal (neurokit's own call);
2. one window per beat of the mean cycle's length, half before its R peak and half after, cut
   with neurokit's arithmetic (`epochs_create`: the signal padded with NaN by one window on
   each side, window bounds truncated with int());
3. beats whose window reaches past the signal dropped; the template is the mean of the rest;
4. each kept beat but the last one scored by its correlation with the template, and the
   scores held from each beat to the next (`nk.signal_interpolate(method="previous")`).

Why not call neurokit: it builds a pandas DataFrame per beat (epochs_create), stacks and
pivots them; that was 87 % of the analysis stage's time (2,800 device-seconds of ECG per
CPU-second here against about 700). Slicing a padded array gives the same windows.
tests/analysis/test_templatematch.py compares the two on sinus, AF, bigeminy, brady, tachy and
noise, at the lengths the stage uses. Like neurokit, it raises ValueError for a signal shorter
than 4 s or with too few beats.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

MIN_SECONDS = 4  # neurokit2's signal_cyclesegment refuses shorter signals


def templatematch(nk: Any, cleaned: npt.NDArray[np.float64], peaks: npt.NDArray[np.int64],
                  sample_rate: int) -> npt.NDArray[np.float64]:
    n = len(cleaned)
    if n < sample_rate * MIN_SECONDS:
        raise ValueError("The data length is too small to be segmented.")
    if len(peaks) == 0:
        raise ValueError("`templatematch` requires at least one detected peak.")
    rate = float(np.mean(nk.signal_rate(peaks, sampling_rate=sample_rate, desired_length=n)))
    window = 60 / rate
    start, end = -0.5 * window, (1 - 0.5) * window  # signal_cyclesegment's ratio_pre = 0.5
    pad = int(float(np.array(end) - np.array(start)) * sample_rate)
    padded = np.concatenate((np.full(pad, np.nan), np.asarray(cleaned, dtype=np.float64),
                             np.full(pad, np.nan)))
    onsets = [int(p) + pad for p in peaks.tolist()]
    bounds = [(int(o + start * sample_rate), int(o + end * sample_rate)) for o in onsets]
    segs = np.stack([padded[a:b] for a, b in bounds])
    valid = ~np.isnan(segs).any(axis=1)
    segs, kept = segs[valid], np.asarray(peaks)[valid]
    if len(kept) == 0:
        raise ValueError("no beat's window lies inside the signal")
    template = segs.mean(axis=0)
    cc = np.asarray([np.corrcoef(seg, template)[0, 1] for seg in segs[:-1]], dtype=np.float64)
    return np.asarray(nk.signal_interpolate(kept[:-1], cc, x_new=np.arange(n), method="previous"),
                      dtype=np.float64)
