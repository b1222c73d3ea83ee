"""EC57 scoring on hand-made beats: matching within 150 ms, the edges left out, scores per
artifact label, episode sensitivity and positive predictivity, and the span sample."""

from __future__ import annotations

import numpy as np
import pytest

from lab.checker import check
from lab.checker.clinical import Clinical, Episode
from lab.checker.ec57 import CLEAN, beat_scores, episode_scores
from lab.history import ClinicalEvent, History, Stored, TruthSegment
from lab.history.beats import BeatSpan, stored_spans

T0 = 1_688_947_200.0


def beats(t0: float, t1: float, rr: float = 0.8) -> list[float]:
    return [float(t) for t in np.arange(t0 + 0.3, t1, rr)]


def test_a_detector_that_finds_every_beat_within_the_window_scores_one() -> None:
    true = beats(T0, T0 + 60)
    jitter = np.random.default_rng(1).uniform(-0.1, 0.1, len(true))
    found = [t + j for t, j in zip(true, jitter, strict=True)]
    s = beat_scores([BeatSpan("a", T0, T0 + 60, tuple(true), tuple(found))], [], T0 + 60)
    assert s.total.fn == 0 and s.total.fp == 0 and s.total.se == 1.0 and s.total.ppv == 1.0
    assert s.total.tp == sum(T0 + 0.5 <= t <= T0 + 59.5 for t in true)  # edges left out


def test_misses_extra_beats_and_beats_outside_the_window_are_counted() -> None:
    true = beats(T0, T0 + 60)
    found = list(true)
    del found[10:15]  # five missed
    found[20] += 0.2  # 200 ms late: a miss and a false beat
    found += [true[30] + 0.4, true[31] + 0.4]  # two extra beats between true ones
    s = beat_scores([BeatSpan("a", T0, T0 + 60, tuple(true), tuple(found))], [], T0 + 60)
    assert (s.total.fn, s.total.fp) == (6, 3)
    assert s.total.se == pytest.approx(s.total.tp / (s.total.tp + 6))
    assert s.total.ppv is not None and s.total.ppv < 1.0


def test_beats_are_scored_per_artifact_label_against_clean_signal() -> None:
    true = beats(T0, T0 + 60)
    # lead-off from 20 s to 40 s: the detector finds nothing there, and elsewhere everything
    found = [t for t in true if not T0 + 20 <= t < T0 + 40]
    truth = [TruthSegment("a", "artifact", "lead-off", T0 + 20, T0 + 40, True),
             TruthSegment("b", "artifact", "motion", T0, T0 + 60, True)]  # another device's
    s = beat_scores([BeatSpan("a", T0, T0 + 60, tuple(true), tuple(found))], truth, T0 + 60)
    assert s.by_artifact[CLEAN].se == 1.0 and s.by_artifact["lead-off"].se == 0.0
    assert list(s.by_artifact) == [CLEAN, "lead-off"]
    assert s.total.se is not None and 0.6 < s.total.se < 0.7


def test_no_beats_give_no_scores() -> None:
    s = beat_scores([], [], T0)
    assert s.total.se is None and s.total.ppv is None and s.spans == 0
    res = check(History())
    assert res.metrics()["beats.se"] is None and res.as_dict()["ec57"]["beats"]["spans"] == 0


def test_episode_scores_leave_delivery_losses_out() -> None:
    def ep(outcome: str, kind: str = "af") -> Episode:
        return Episode("a", kind, "af-episode", T0, T0 + 60, False, outcome)

    false = ClinicalEvent("a", "af", T0 + 9000, T0 + 9010)
    c = Clinical(episodes=(ep("live"), ep("late"), ep("missed"), ep("lost"), ep("buffered"),
                           ep("live", "pause")),
                 false_alarms=(false,), events=6, events_by_kind={"af": 5, "pause": 1})
    scores = episode_scores(c)
    assert (scores["af"].episodes, scores["af"].seen) == (3, 2)
    assert scores["af"].se == pytest.approx(2 / 3) and scores["af"].ppv == pytest.approx(4 / 5)
    assert scores["pause"].se == 1.0 and "brady" not in scores


def test_the_span_sample_is_bounded_spread_over_devices_and_contiguous() -> None:
    stored = [Stored(T0 + i + 2, d, 1, i, T0 + i, duration_s=1.0) for d in ("a", "b") for i in range(10)]
    stored += [Stored(T0 + 500, "a", 1, 10, T0 + 400, duration_s=1.0)]  # after a gap: a run of its own
    # a's pieces: [0, 5), [5, 10), [400, 401); b's: [0, 5), [5, 10)
    assert stored_spans(stored, max_spans=3, max_span_s=5.0) == [
        ("a", T0, T0 + 5.0), ("a", T0 + 5, T0 + 10), ("b", T0, T0 + 5.0)]
    assert stored_spans(stored, max_spans=4, max_span_s=5.0)[:2] == [("a", T0, T0 + 5.0),
                                                                     ("a", T0 + 5, T0 + 10)]
    spread = stored_spans(stored, max_spans=4, max_span_s=2.0)  # a has 6 pieces, b has 5: 2 each
    assert spread == [("a", T0, T0 + 2), ("a", T0 + 6, T0 + 8), ("b", T0, T0 + 2), ("b", T0 + 4, T0 + 6)]
    assert stored_spans(stored, max_spans=100) == [("a", T0, T0 + 10), ("a", T0 + 400, T0 + 401),
                                                   ("b", T0, T0 + 10)]
