"""The pure parts: the rules on beat trains, the merge rule, the read API on missing or damaged
stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis import store_view
from analysis.errors import AnalysisError
from analysis.merge import StoredEvent, merge
from analysis.model import Episode
from analysis.rules import AF_ENTROPY, AF_NRMSSD, Run, af_window_flags, episodes, typical_rr


def beats_from(rr: np.ndarray) -> np.ndarray:
    return np.concatenate(([0.0], np.cumsum(rr)))


def test_af_threshold_separates_af_from_sinus_and_bigeminy() -> None:
    rng = np.random.default_rng(0)
    sinus = 0.8 * (1 + 0.03 * rng.standard_normal(200))  # HRV of a healthy adult, beat to beat
    af = 0.7 * rng.uniform(0.55, 1.45, 200)
    bigeminy = np.tile([0.55, 1.05], 100)  # a PVC every other beat: irregular, but regularly so
    assert af_window_flags(af).mean() > 0.95
    assert not af_window_flags(sinus).any()
    assert not af_window_flags(bigeminy).any()
    assert (AF_NRMSSD, AF_ENTROPY) == (0.10, 0.55)  # the documented thresholds


def test_rate_onsets_are_the_first_abnormal_beat() -> None:
    rr = np.concatenate((np.full(20, 0.85), np.full(12, 1.8), np.full(20, 0.85), np.full(30, 0.35)))
    b = beats_from(rr)
    eps = {e.kind: e for e in episodes("d", [Run(0.0, float(b[-1]) + 0.3, b)])}
    assert eps["brady"].onset == pytest.approx(b[20]) and eps["brady"].end == pytest.approx(b[32])
    assert eps["tachy"].onset == pytest.approx(b[52]) and eps["tachy"].open  # held to the data end
    assert "pause" not in eps and "af" not in eps


@pytest.mark.parametrize(("bpm", "coupling"), [(50.0, 0.7), (60.0, 0.6), (85.0, 0.55), (85.0, 0.7)])
def test_bigeminy_is_rated_by_both_its_intervals(bpm: float, coupling: float) -> None:
    """In bigeminy the RR series alternates the PVC's coupling interval and its compensatory
    pause: an odd window's median is one of the two (at 85 bpm with a 0.55 coupling, 155 bpm: a
    false tachycardia; at 50 bpm, 36: a false bradycardia). The rate is the interquartile mean."""
    rr0 = 60.0 / bpm
    for first in (coupling, 2 - coupling):  # either interval first: odd windows of both kinds
        rr = np.tile([first * rr0, (2 - first) * rr0], 40)
        b = beats_from(rr)
        eps = episodes("d", [Run(0.0, float(b[-1]) + 0.3, b)])
        assert [e.kind for e in eps] == [], [(e.kind, e.evidence) for e in eps]
    assert 60.0 / float(typical_rr(np.tile([coupling * rr0, (2 - coupling) * rr0], 5)[:9])) == \
        pytest.approx(bpm, rel=0.12)


def test_a_pause_and_an_asystole_at_the_end_of_the_data() -> None:
    rr = np.concatenate((np.full(10, 0.8), [4.2], np.full(10, 0.8)))
    b = beats_from(rr)
    eps = [e for e in episodes("d", [Run(0.0, float(b[-1]) + 5.0, b)]) if e.kind == "pause"]
    assert [(e.onset, e.end, e.open) for e in eps] == [
        (pytest.approx(b[10]), pytest.approx(b[11]), False),
        (pytest.approx(b[-1]), pytest.approx(b[-1] + 5.0), True)]
    cut = episodes("d", [Run(0.0, float(b[-1]) + 5.0, b, end_edge=False)])  # only the window ended
    assert len([e for e in cut if e.kind == "pause"]) == 1


def stored(onset: float, last: float, raised: float, i: int = 1, kind: str = "brady") -> StoredEvent:
    return StoredEvent(i, "d", kind, onset, last, False, raised, raised, {"hr_bpm": 35.0})


def test_merge_extends_and_never_duplicates() -> None:
    ep = Episode("d", "brady", 100.0, 130.0, False, {"hr_bpm": 34.0})
    new, drop = merge([], ep, now=500.0)
    assert new is not None and new.id is None and new.raised_at == 500.0 and not drop
    assert merge([stored(100.0, 130.0, 500.0)], ep, now=900.0) == (None, [])  # the same again
    assert merge([stored(90.0, 140.0, 500.0)], ep, now=900.0) == (None, [])  # inside it
    grown, _ = merge([stored(110.0, 125.0, 500.0)], ep, now=900.0)
    assert grown is not None
    assert (grown.id, grown.onset, grown.last_seen, grown.raised_at) == (1, 100.0, 130.0, 500.0)
    adjacent, _ = merge([stored(135.0, 150.0, 500.0)], ep, now=900.0)  # 5 s apart: the same episode
    assert adjacent is not None and adjacent.id == 1 and adjacent.onset == 100.0
    bridged, drop = merge([stored(60.0, 101.0, 700.0, i=2), stored(129.0, 150.0, 500.0, i=1)], ep, now=900.0)
    assert bridged is not None and bridged.id == 1 and drop == [2] and bridged.raised_at == 500.0
    assert (bridged.onset, bridged.last_seen) == (60.0, 150.0)
    far, _ = merge([stored(200.0, 230.0, 500.0)], ep, now=900.0)
    assert far is not None and far.id is None  # 70 s later: another episode
    pause = Episode("d", "pause", 100.0, 104.0, False)
    two, _ = merge([stored(105.0, 109.0, 500.0, kind="pause")], pause, now=900.0)
    assert two is not None and two.id is None  # two pauses a second apart are two pauses


def test_read_api_on_missing_and_damaged_stores(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    assert store_view.events(missing) == []
    assert store_view.detected_beats(missing, "d", 0, 1).size == 0
    assert store_view.progress(missing)["analysed"] == 0 and store_view.progress(missing)["lag_s"] is None
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all, " * 100)
    for call in (lambda: store_view.events(garbage), lambda: store_view.progress(garbage),
                 lambda: store_view.detected_beats(garbage, "d", 0, 1)):
        with pytest.raises(AnalysisError):
            call()
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(AnalysisError, match="directory"):
        store_view.events(tmp_path / "dir.sqlite")
