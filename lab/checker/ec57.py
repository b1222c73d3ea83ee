"""The analysis scored the way rhythm algorithms are (ANSI/AAMI EC57). Pure.

    beat_scores(spans, truth, end) -> BeatScores   beat sensitivity (Se), positive predictivity (+P)
    episode_scores(clinical) -> {kind: score}      episode Se and +P: af, brady, tachy, pause
    ec57(spans, truth, clinical) -> Ec57

Beats. Over each span of stored signal (lab/history/beats.py: contiguous stored readings, a
bounded, deterministic sample of them), the generator's R peaks (devices.ecg_source.truth_beats)
are the reference and the analysis' detected beats the test. wfdb's
`processing.compare_annotations` pairs them one to one within MATCH_WINDOW_S (150 ms, EC57's
window), on a 1-kHz sample grid. True beats within EDGE_S of a span's edge are left out, and
so are detected beats beyond the window around what is kept: a detector cannot see a beat it
has only half of, and EC57 likewise ignores the record's edges. A true beat that pairs is a
TP, one that does not an FN; a detected beat that pairs with none is an FP.
Se = TP / (TP + FN), +P = TP / (TP + FP).

Artifacts. Every beat (true or detected) is filed under the artifact label whose truth segment
holds its time ("lead-off", "motion", "emg", "wander", "mains"; several: the first in that
order), else "clean", and Se/+P are given per label: how much each artifact lowers the scores
against clean signal.

Episodes (from the clinical section, lab/checker/clinical.py): Se = episodes seen / episodes
whose readings were all stored or seen anyway (seen + missed: delivery's losses are not the
detector's); +P = events matching an episode / rhythm events raised, per kind.
"""

from __future__ import annotations

import importlib
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from lab.checker.clinical import EPISODE_KINDS, Clinical
from lab.history.beats import BeatSpan
from lab.history.truth import ARTIFACT, TruthSegment

MATCH_WINDOW_S = 0.150
EDGE_S = 0.5
GRID_HZ = 1000.0
ARTIFACT_ORDER = ("lead-off", "motion", "emg", "wander", "mains")
CLEAN = "clean"


@cache
def _compare_annotations() -> Callable[..., Any]:
    """wfdb.processing.compare_annotations, imported on first use: importing wfdb costs a
    second and trips a pandas deprecation warning that is not ours (and that warnings-as-errors
    would turn into a crash), so a check with no beats to score never pays for it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        processing = importlib.import_module("wfdb.processing")
    fn: Callable[..., Any] = processing.compare_annotations
    return fn


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


@dataclass(frozen=True)
class Score:
    tp: int = 0
    fn: int = 0
    fp: int = 0

    @property
    def se(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def ppv(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp)

    def as_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fn": self.fn, "fp": self.fp, "se": self.se, "ppv": self.ppv}


@dataclass(frozen=True)
class BeatScores:
    spans: int = 0
    seconds: float = 0.0
    total: Score = field(default_factory=Score)
    by_artifact: Mapping[str, Score] = field(default_factory=dict)  # label (or "clean") -> score

    def as_dict(self) -> dict[str, Any]:
        return {"spans": self.spans, "seconds": round(self.seconds, 3), **self.total.as_dict(),
                "by_artifact": {k: v.as_dict() for k, v in self.by_artifact.items()}}


@dataclass(frozen=True)
class EpisodeScore:
    episodes: int = 0  # seen + missed
    seen: int = 0
    events: int = 0
    matched: int = 0

    @property
    def se(self) -> float | None:
        return _ratio(self.seen, self.episodes)

    @property
    def ppv(self) -> float | None:
        return _ratio(self.matched, self.events)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "se": self.se, "ppv": self.ppv}


@dataclass(frozen=True)
class Ec57:
    beats: BeatScores = field(default_factory=BeatScores)
    episodes: Mapping[str, EpisodeScore] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"beats": self.beats.as_dict(),
                "episodes": {k: v.as_dict() for k, v in self.episodes.items()}}

    def metrics(self) -> dict[str, float | None]:
        m: dict[str, float | None] = {"beats.se": self.beats.total.se, "beats.ppv": self.beats.total.ppv}
        for label, s in self.beats.by_artifact.items():
            m[f"beats.{label}.se"], m[f"beats.{label}.ppv"] = s.se, s.ppv
        for kind, e in self.episodes.items():
            m[f"episode_se.{kind}"], m[f"episode_ppv.{kind}"] = e.se, e.ppv
        return m


def _labeller(dev: str, truth: Iterable[TruthSegment], run_end: float) -> list[tuple[float, float, str]]:
    order = {a: i for i, a in enumerate(ARTIFACT_ORDER)}
    segs = [(s.start, s.until(run_end), s.label) for s in truth if s.dev == dev and s.kind == ARTIFACT]
    return sorted(segs, key=lambda x: order.get(x[2], len(order)))


def _label(t: float, segs: Sequence[tuple[float, float, str]]) -> str:
    return next((label for a, b, label in segs if a <= t < b), CLEAN)


def span_scores(span: BeatSpan, segs: Sequence[tuple[float, float, str]]) -> dict[str, Score]:
    """One span's TP/FN/FP per artifact label (module docstring)."""
    lo, hi = span.t0 + EDGE_S, span.t1 - EDGE_S
    ref = np.asarray(sorted(t for t in span.truth if lo <= t <= hi), dtype=float)
    w = MATCH_WINDOW_S  # a detected beat just outside the edges may still pair with one inside
    test = np.asarray(sorted(t for t in span.detected if lo - w <= t <= hi + w), dtype=float)
    matched_test: set[int] = set()
    ref_hit = np.zeros(ref.size, dtype=bool)
    if ref.size and test.size:
        c = _compare_annotations()(np.round((ref - span.t0) * GRID_HZ).astype(int),
                                np.round((test - span.t0) * GRID_HZ).astype(int),
                                int(MATCH_WINDOW_S * GRID_HZ))
        pairs = np.asarray(c.matching_sample_nums)
        ref_hit = pairs >= 0
        matched_test = {int(j) for j in pairs if j >= 0}
    out: dict[str, Score] = defaultdict(Score)
    for t, hit in zip(ref, ref_hit, strict=True):
        out[_label(float(t), segs)] += Score(tp=1) if hit else Score(fn=1)
    for j, t in enumerate(test):
        if j not in matched_test and lo <= t <= hi:
            out[_label(float(t), segs)] += Score(fp=1)
    return dict(out)


def beat_scores(spans: Sequence[BeatSpan], truth: Sequence[TruthSegment], run_end: float) -> BeatScores:
    by: dict[str, Score] = defaultdict(Score)
    labels: dict[str, list[tuple[float, float, str]]] = {}
    for span in spans:
        if span.dev not in labels:
            labels[span.dev] = _labeller(span.dev, truth, run_end)
        for label, s in span_scores(span, labels[span.dev]).items():
            by[label] += s
    total = sum(by.values(), Score())
    ordered = {k: by[k] for k in (CLEAN, *ARTIFACT_ORDER) if k in by}
    ordered.update({k: v for k, v in sorted(by.items()) if k not in ordered})
    return BeatScores(len(spans), sum(s.t1 - s.t0 for s in spans), total, ordered)


def episode_scores(clinical: Clinical) -> dict[str, EpisodeScore]:
    out = {}
    for kind in EPISODE_KINDS:
        c = clinical.counts(kind)
        events = clinical.events_by_kind.get(kind, 0)
        if c["seen"] + c["missed"] or events:
            out[kind] = EpisodeScore(c["seen"] + c["missed"], c["seen"], events,
                                     events - c["false_alarms"])
    return out


def ec57(spans: Sequence[BeatSpan], truth: Sequence[TruthSegment], clinical: Clinical,
         run_end: float) -> Ec57:
    return Ec57(beat_scores(spans, truth, run_end), episode_scores(clinical))
