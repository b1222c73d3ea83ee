"""measure(): beats, HR and the PR/QRS/QT intervals of one reading."""

from __future__ import annotations

import numpy as np

from analysis.measure import measure
from tests.analysis.synth import FS, render, rhythm


def test_a_sinus_reading_gives_hr_and_intervals_in_physiological_ranges() -> None:
    beats, _ = rhythm(np.random.default_rng(0), [("sinus", 12, 75)])
    m = measure(render(beats, 10.0), FS)
    assert abs(m["hr_bpm"] - 75) < 3
    expected = np.round(beats[beats < 10.0] * FS)
    assert len(m["beats"]) >= len(expected) - 1
    assert np.abs(np.asarray(m["beats"])[:, None] - expected[None, :]).min(axis=1).max() <= 0.05 * FS
    # neurokit's wavelet boundaries are wide on ecgsyn's shape: QRS 148-188 ms measured at 60-100 bpm
    # (its Q-to-S peaks are 80-96 ms apart); these bounds catch a wrong wave, not a wide one
    assert 60 <= m["pr_ms"] <= 260 and 40 <= m["qrs_ms"] <= 220 and 250 <= m["qt_ms"] <= 550, m


def test_what_it_cannot_tell_is_none() -> None:
    flat = measure(np.zeros(FS), FS)
    assert flat == {"beats": [], "hr_bpm": None, "pr_ms": None, "qrs_ms": None, "qt_ms": None}
    short = measure(np.zeros(10), FS)
    assert short["hr_bpm"] is None and short["beats"] == []
