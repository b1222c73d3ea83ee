"""wfdb's XQRS as the tests' independent beat detector (not the one ingest's analysis uses).

wfdb 4.3 calls a pandas API that pandas 3 deprecates, at import and while it runs; the
suite turns warnings into errors, so that one DeprecationWarning is silenced here only.
"""

from __future__ import annotations

import warnings

import numpy as np

from devices.ecg_source import GAIN_UV


def xqrs_peaks(samples: np.ndarray, fs: int, *, counts: bool = True,
               hr_max: float = 200.0) -> np.ndarray:
    """Sample indices of the QRS complexes XQRS finds in `samples` (int16 counts of GAIN_UV
    microvolts, or millivolts with counts=False). `hr_max`: XQRS's refractory limit
    (default 200 bpm, its own)."""
    x = samples.astype(np.float64) * (GAIN_UV / 1000.0 if counts else 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from wfdb.processing import XQRS

        detector = XQRS(x, fs=fs, conf=XQRS.Conf(hr_max=hr_max))
        detector.detect(verbose=False)
    return np.asarray(detector.qrs_inds, dtype=np.int64)
