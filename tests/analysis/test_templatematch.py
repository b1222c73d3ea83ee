"""analysis/templatematch.py gives neurokit2's own template-match quality, number for number,
on the signals the stage sees: every rhythm of the catalogue, the lengths it analyses (4 s to a
30-s strip), noise; and raises where neurokit raises."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analysis.templatematch import templatematch
from devices.catalogue import fleet_profiles, load_catalogue
from devices.ecg_source import PatientSource
from devices.profile import Cohort

FS = 250
RHYTHMS = [("sinus", (50, 100)), ("af", (60, 120)), ("bigeminy", (60, 85)), ("brady", (30, 40)),
           ("tachy", (150, 220)), ("pvc", (60, 90))]


def signals() -> list[np.ndarray]:
    cat = load_catalogue()
    out = []
    for name, (lo, hi) in RHYTHMS:
        profiles = fleet_profiles(3, 5, cohorts=[Cohort("x", 3, (float(lo), float(hi)), profile=name)],
                                  episodes=[], catalogue=cat)
        source = PatientSource(FS, 5)
        for i, p in enumerate(profiles):
            for seconds in (4.0, 5.3, 9.0, 30.0):
                mv, _ = source.model(p).render(1_700_000_000 * FS + i * 1000, int(seconds * FS))
                out.append(np.asarray(mv, dtype=np.float64))
    rng = np.random.default_rng(1)
    out += [rng.normal(0.0, 0.5, int(s * FS)) for s in (3.0, 4.0, 8.0, 30.0)]
    return out


def test_the_numbers_are_neurokits() -> None:
    nk = pytest.importorskip("neurokit2")
    compared = raised = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurokit's own warnings on noise, as in analysis.detect
        for x in signals():
            cleaned = np.asarray(nk.ecg_clean(x, sampling_rate=FS), dtype=np.float64)
            _, info = nk.ecg_peaks(cleaned, sampling_rate=FS)
            peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
            try:
                want = np.asarray(nk.ecg_quality(cleaned, rpeaks=peaks, sampling_rate=FS,
                                                 method="templatematch"), dtype=np.float64)
            except ValueError:
                with pytest.raises(ValueError, match=r"."):  # any reason: neurokit words its own
                    templatematch(nk, cleaned, peaks, FS)
                raised += 1
                continue
            got = templatematch(nk, cleaned, peaks, FS)
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
            compared += 1
    assert compared >= 60 and raised >= 1  # both paths were exercised
