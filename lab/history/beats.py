"""Beats for EC57 scoring (lab/checker/ec57.py): over spans of stored signal, the generator's
true R peaks and the analysis' detected beats.

    stored_spans(stored, max_spans, max_span_s) -> [(dev, t0, t1)]   pure: which spans to score
    load_beat_spans(state_dir, history) -> [BeatSpan]                reads the stores

A span is a piece of at most `max_span_s` of a run of one device's stored readings that follow
each other without a gap (a strip is a run of its own). Scoring every beat of a long run would
cost more than the run (96 h of 1,000 devices is 400 million beats), so a bounded sample is
scored: at most `max_spans` spans, shared round-robin over the devices in device order, each
device's share spread evenly over its pieces in capture order. The same stores give the same
sample.

Truth beats come from devices.ecg_source.truth_beats(profiles.json entry, t0, t1), detected
ones from analysis.store_view.detected_beats(db, device, t0, t1); a device without a profile
entry, or whose entry or store cannot be read, is skipped, and a missing analysis store reads
as no detected beats.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from analysis.errors import AnalysisError
from analysis.store_view import detected_beats
from devices.errors import DeviceError
from lab.history.events import Stored
from lab.history.truth import Patient

MAX_SPANS = 120
MAX_SPAN_S = 120.0
GAP_S = 0.01  # readings this close are contiguous


@dataclass(frozen=True)
class BeatSpan:
    dev: str
    t0: float
    t1: float
    truth: tuple[float, ...]  # R-peak times (simulated Unix seconds)
    detected: tuple[float, ...]
    symbols: tuple[str, ...] = ()  # WFDB symbols of the true beats ('N', 'V')


def _runs(readings: Sequence[Stored]) -> list[tuple[float, float]]:
    runs: list[list[float]] = []
    for r in sorted(readings, key=lambda r: r.captured_at):
        t0, t1 = r.captured_at, r.captured_at + r.duration_s
        if runs and abs(t0 - runs[-1][1]) <= GAP_S:
            runs[-1][1] = max(runs[-1][1], t1)
        else:
            runs.append([t0, t1])
    return [(a, b) for a, b in runs if b > a]


def stored_spans(stored: Sequence[Stored], max_spans: int = MAX_SPANS,
                 max_span_s: float = MAX_SPAN_S) -> list[tuple[str, float, float]]:
    """The spans to score (module docstring), in device then capture order."""
    by_dev: dict[str, list[Stored]] = defaultdict(list)
    for s in stored:
        if s.duration_s > 0:
            by_dev[s.dev].append(s)
    pieces = {d: [(a + i * max_span_s, min(b, a + (i + 1) * max_span_s))
                  for a, b in _runs(v) for i in range(math.ceil((b - a) / max_span_s))]
              for d, v in sorted(by_dev.items())}
    share = dict.fromkeys(pieces, 0)
    left = max_spans
    while left > 0 and any(share[d] < len(p) for d, p in pieces.items()):
        for d, p in pieces.items():
            if left and share[d] < len(p):
                share[d] += 1
                left -= 1
    return [(d, *p[(i * len(p)) // share[d]]) for d, p in pieces.items() for i in range(share[d])]


def load_beat_spans(state_dir: Path, stored: Sequence[Stored], patients: Mapping[str, Patient],
                    max_spans: int = MAX_SPANS) -> list[BeatSpan]:
    """Truth and detected beats over the sampled spans (module docstring)."""
    db = Path(state_dir) / "analysis" / "analysis.sqlite"
    out = []
    for dev, t0, t1 in stored_spans(stored, max_spans):
        p = patients.get(dev)
        if p is None or not p.entry:
            continue
        try:
            true = _truth_beats(dict(p.entry), t0, t1)
            found = detected_beats(db, dev, t0, t1)
        except (AnalysisError, DeviceError, KeyError, TypeError, ValueError):
            continue  # an entry or a store it cannot read: that span is not scored
        out.append(BeatSpan(dev, t0, t1, tuple(float(t) for t, _ in true),
                            tuple(float(t) for t in found), tuple(str(s) for _, s in true)))
    return out


def _truth_beats(entry: dict[str, object], t0: float, t1: float) -> list[tuple[float, str]]:
    """devices.ecg_source.truth_beats, imported when beats are scored: the signal model pulls
    in scipy.signal (0.6 s), which `ecgpipe report` on a run without patients should not pay."""
    from devices.ecg_source import truth_beats

    return truth_beats(entry, t0, t1)
