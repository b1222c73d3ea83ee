"""Which signal to analyse for the new readings of one device, and which runs the rules see.
Pure: no neurokit2, no SQLite.

Contiguity: two readings of a device are contiguous when the second starts where the first
ends (within 1.5 samples), at the same sample rate, in the same recording (strip_id; 0 for
continuous): so a sliding window runs over continuous readings, and each strip is analysed on
its own, never joined to the next strip.

A Span is the signal the detector reads for some new ("own") readings: the own readings and
up to CONTEXT_S of contiguous stored neighbours on each side (the detector's filters and its
template need them; a late reading filling a gap is read with its neighbours). Beats are kept
only inside the own readings, plus MARGIN_S before each (a beat that the neighbour's own
analysis missed at its right edge); a beat within EDGE_S of the end of the signal, when no
neighbour follows, is left for the next reading's analysis (the filters' edge makes it
unreliable), and the store skips a beat within REFRACTORY_S of one it holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.model import Segment
from analysis.rules import Run
from ingest.store_feed import FeedReading

CONTEXT_S = 8.0
MARGIN_S = 0.5
EDGE_S = 0.2
REFRACTORY_S = 0.2
Key = tuple[int, int]  # (boot_epoch, seq) within one device


def tolerance(sample_rate: int) -> float:
    return 1.5 / sample_rate


def contiguous(a: FeedReading, b: FeedReading) -> bool:
    """Whether b starts where a ends (same rate, same recording)."""
    return (a.strip_id == b.strip_id and a.sample_rate_hz == b.sample_rate_hz
            and abs(b.captured_at - a.end_at) <= tolerance(a.sample_rate_hz))


@dataclass(frozen=True, eq=False)
class Span:
    readings: tuple[FeedReading, ...]  # contiguous, in capture order
    own: frozenset[Key]

    @property
    def t0(self) -> float:
        return self.readings[0].captured_at

    @property
    def sample_rate(self) -> int:
        return self.readings[0].sample_rate_hz

    def signal(self) -> npt.NDArray[np.float64]:
        return np.concatenate([r.millivolts() for r in self.readings])

    def own_readings(self) -> list[FeedReading]:
        return [r for r in self.readings if (r.boot_epoch, r.seq) in self.own]

    def keep_beats(self, peaks: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The capture times of the detected peaks this span decides (see the docstring)."""
        t = self.t0 + peaks.astype(np.float64) / self.sample_rate
        keep = np.zeros(t.shape, dtype=bool)
        for r in self.own_readings():
            keep |= (t >= r.captured_at - MARGIN_S) & (t < r.end_at)
        if (self.readings[-1].boot_epoch, self.readings[-1].seq) in self.own:
            keep &= t <= self.readings[-1].end_at - EDGE_S
        return t[keep]


def context_ranges(new: Sequence[FeedReading]) -> list[tuple[int, int, int]]:
    """(boot, seq_lo, seq_hi) ranges holding every stored neighbour within CONTEXT_S of the
    new readings: consecutive seqs of one boot are fetched as one range."""
    out: list[tuple[int, int, int]] = []
    for r in sorted(new, key=lambda r: (r.boot_epoch, r.seq)):
        k = math.ceil(CONTEXT_S / max(r.duration_s, 1e-3)) + 1
        lo, hi = r.seq - k, r.seq + k
        if out and out[-1][0] == r.boot_epoch and lo <= out[-1][2] + 1:
            out[-1] = (r.boot_epoch, out[-1][1], max(out[-1][2], hi))
        else:
            out.append((r.boot_epoch, max(0, lo), hi))
    return out


def _runs_of(readings: list[FeedReading]) -> list[list[FeedReading]]:
    runs: list[list[FeedReading]] = []
    for r in readings:
        if runs and contiguous(runs[-1][-1], r):
            runs[-1].append(r)
        else:
            runs.append([r])
    return runs


def build_spans(new: Sequence[FeedReading], context: Sequence[FeedReading]) -> list[Span]:
    """The spans that analyse every new reading once, with their context."""
    by_key = {(r.boot_epoch, r.seq): r for r in context}
    by_key.update({(r.boot_epoch, r.seq): r for r in new})
    own = {(r.boot_epoch, r.seq) for r in new}
    ordered = sorted(by_key.values(), key=lambda r: (r.captured_at, r.boot_epoch, r.seq))
    spans: list[Span] = []
    for run in _runs_of(ordered):
        idx = [i for i, r in enumerate(run) if (r.boot_epoch, r.seq) in own]
        groups: list[list[int]] = []
        for i in idx:  # own readings far apart in one long run: separate spans
            if groups and run[i].captured_at - run[groups[-1][-1]].end_at <= 2 * CONTEXT_S:
                groups[-1].append(i)
            else:
                groups.append([i])
        for g in groups:
            t_lo, t_hi = run[g[0]].captured_at - CONTEXT_S, run[g[-1]].end_at + CONTEXT_S
            part = [r for r in run if r.end_at > t_lo and r.captured_at < t_hi]
            spans.append(Span(tuple(part), frozenset((r.boot_epoch, r.seq) for r in part) & own))
    return spans


def runs_from_segments(segments: Sequence[Segment], beats: npt.NDArray[np.float64],
                       w0: float, w1: float) -> list[Run]:
    """The readable runs (contiguous readable segments of one recording) inside [w0, w1], with
    their beats. A run's edge is true where the data or the readable signal ends, not where
    the window cut it."""
    runs: list[list[Segment]] = []
    for s in sorted(segments, key=lambda s: s.t0):
        if not s.readable:
            runs.append([])
            continue
        last = runs[-1][-1] if runs and runs[-1] else None
        if last is not None and last.strip_id == s.strip_id and abs(s.t0 - last.t1) <= 0.01:
            runs[-1].append(s)
        else:
            runs.append([s])
    out = []
    for segs in (r for r in runs if r):
        t0, t1 = max(segs[0].t0, w0), min(segs[-1].t1, w1)
        if t1 <= t0:
            continue
        b = beats[(beats >= t0) & (beats < t1)]
        out.append(Run(t0, t1, b, start_edge=segs[0].t0 >= w0, end_edge=segs[-1].t1 <= w1))
    return out
