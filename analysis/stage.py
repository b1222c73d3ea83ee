"""One batch of the analysis: new stored readings in, beats, segments and events out.

    analyse_batch(store, context, batch, now) -> BatchSummary     (inside store.batch())

Per device, in capture-time order:
1. readings already analysed (a segment exists) are skipped: a redelivered reading does nothing;
2. the rest are cut into spans with their stored neighbours as context (analysis.spans), and
   each span is read by the detector (analysis.detect): beats into `beats`, one segment per
   own reading (readable or not) into `segments`;
3. the rules (analysis.rules) are evaluated over the readable runs of a window of RULE_CONTEXT_S
   either side of what changed (enough for a 32-beat AF window at 35 bpm), with the beats the
   store holds; each episode is merged into `events` (analysis.merge).

A late reading (a backlog filling a gap) is therefore evaluated when it arrives, together with
the neighbours on both sides that were analysed before it, and an event it reveals is raised
`now`: its onset is the capture time, its raised_at the analysis clock.

Unreadable: a reading is unreadable when
- its lead-off flag is set (wire FLAG_LEAD_OFF, 0x04), or
- more than 5 % of its samples sit at the int16 rails (saturated), or
- the median template-match quality (neurokit2 "templatematch") of its beats and those within
  CONTEXT_S (8 s) of it is below QUALITY_MIN = 0.7, or
- too few beats were found near it to judge by template and its filtered signal away from
  those beats (BEAT_MASK_S around each) spreads over more than NOISE_SPREAD_MV = 0.8 mV (5th
  to 95th percentile): something is there, and it is not beats (a PVC's complex alone spans
  about 2 mV: in a bigeminy's first seconds it made the record's start read unreadable).
Measured on ecgsyn-shaped beats at 250 Hz: every reading of a 7-minute record of sinus, brady,
tachy and AF scored 0.90 or more but one (0.49: a 35-bpm reading at the live edge where a T
wave was taken for a beat); 0.5 mV of white noise scored 0.47-0.69, or too few beats with a
spread of about 1.6 mV; a clean ECG spreads over about 0.5 mV and an asystole's baseline less.
Orphanidou et al. (2015) put the limit of clinically usable at 0.66. A stretch with no beats
and a quiet baseline is not unreadable: it may be an asystole (a pause); lead-off is reported
by the device's flag. An unreadable EVENT needs UNREADABLE_MIN_S = 3 s of contiguous unreadable
readings (rules.unreadable_episodes); a single bad reading is only left out of the rhythm rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from analysis.detect import Detection, detect
from analysis.merge import MERGE_GAP_S, merge
from analysis.model import Episode, Segment
from analysis.rules import episodes, unreadable_episodes
from analysis.spans import CONTEXT_S, REFRACTORY_S, Span, build_spans, context_ranges, runs_from_segments
from analysis.store import AnalysisStore
from ingest.store_feed import FeedReading

FLAG_LEAD_OFF = 0x04  # wire.reading.FLAG_LEAD_OFF (being added there); the value is the contract
QUALITY_MIN = 0.7
NOISE_SPREAD_MV = 0.8
BEAT_MASK_S = (0.15, 0.45)  # what of the signal around an R peak belongs to its beat (QRS, T)
MIN_BETWEEN_S = 0.2  # less signal than this between beats: nothing to judge
SATURATED_FRACTION = 0.05
RULE_CONTEXT_S = 60.0


class Context(Protocol):
    """Stored neighbours of new readings (the ingest store's feed, or a fake)."""

    def device_readings(self, device_id: str, boot_epoch: int, seq_lo: int,
                        seq_hi: int) -> list[FeedReading]: ...


@dataclass
class BatchSummary:
    analysed: int = 0
    skipped: int = 0
    beats: int = 0
    raised: int = 0
    updated: int = 0


def _segment(r: FeedReading, span: Span, det: Detection) -> Segment:
    lead_off = bool(r.flags & FLAG_LEAD_OFF)
    rails = np.count_nonzero((r.samples == np.iinfo(np.int16).max) | (r.samples == np.iinfo(np.int16).min))
    quality = None
    if det.quality is not None:  # the quality of the beats in and around the reading
        t = span.t0 + det.peaks / span.sample_rate
        near = det.quality[det.peaks[(t >= r.captured_at - CONTEXT_S) & (t < r.end_at + CONTEXT_S)]]
        near = near[np.isfinite(near)]
        quality = round(float(np.median(near)), 4) if near.size else None
    noisy = False
    if quality is None and det.cleaned is not None:  # too few beats to judge by template
        noisy = _spread_between_beats(r, span, det.cleaned, det.peaks) > NOISE_SPREAD_MV
    readable = bool(not lead_off and not noisy and rails <= SATURATED_FRACTION * len(r.samples)
                    and (quality is None or quality >= QUALITY_MIN))
    return Segment(r.device_id, r.boot_epoch, r.seq, r.captured_at, r.end_at, r.strip_id,
                   readable, quality, lead_off)


def _spread_between_beats(r: FeedReading, span: Span, cleaned: npt.NDArray[np.float64],
                          peaks: npt.NDArray[np.int64]) -> float:
    """The 5th-95th percentile spread (mV) of the reading's filtered signal away from its
    detected beats (BEAT_MASK_S around each R peak: the QRS and T wave). A PVC's wide complex
    spans 2 mV; between beats a clean record is near its baseline and noise is not. 0 when
    the beats cover the reading."""
    fs = span.sample_rate
    i0 = max(0, round((r.captured_at - span.t0) * fs))
    part = cleaned[i0 : i0 + len(r.samples)]
    keep = np.ones(part.size, dtype=bool)
    before, after = round(BEAT_MASK_S[0] * fs), round(BEAT_MASK_S[1] * fs)
    for p in peaks.tolist():
        keep[max(0, p - i0 - before) : max(0, p - i0 + after)] = False
    rest = part[keep]
    return float(np.ptp(np.percentile(rest, [5, 95]))) if rest.size >= MIN_BETWEEN_S * fs else 0.0


def _windows(spans: Sequence[Span]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s in sorted(spans, key=lambda s: s.t0):
        own = s.own_readings()
        w0, w1 = own[0].captured_at - RULE_CONTEXT_S, own[-1].end_at + RULE_CONTEXT_S
        if out and w0 <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], w1))
        else:
            out.append((w0, w1))
    return out


def _merge_all(store: AnalysisStore, eps: list[Episode], now: float, summary: BatchSummary) -> None:
    for ep in sorted(eps, key=lambda e: (e.kind, e.onset)):
        gap = MERGE_GAP_S[ep.kind]
        near = store.events_near(ep.device_id, ep.kind, ep.onset - gap, ep.end + gap)
        ev, drop = merge(near, ep, now)
        if ev is None:
            continue
        if ev.id is None:
            summary.raised += 1
        else:
            summary.updated += 1
        store.write_event(ev, drop)


def _evaluate(store: AnalysisStore, device_id: str, w0: float, w1: float, now: float,
              summary: BatchSummary) -> None:
    segs = store.segments(device_id, w0, w1)
    beats = store.beats(device_id, w0, w1)
    eps = episodes(device_id, runs_from_segments(segs, beats, w0, w1))
    latest = store.latest_t1(device_id)
    eps += unreadable_episodes(device_id, segs, latest, gap_s=0.01)
    _merge_all(store, eps, now, summary)


def analyse_device(store: AnalysisStore, context: Context, new: Sequence[FeedReading], now: float,
                   summary: BatchSummary) -> None:
    device_id = new[0].device_id
    done = store.analysed_keys(device_id, [(r.boot_epoch, r.seq) for r in new])
    fresh = list({(r.boot_epoch, r.seq): r for r in new if (r.boot_epoch, r.seq) not in done}.values())
    summary.skipped += len(new) - len(fresh)
    if not fresh:
        return
    store.note_device(device_id)
    ctx: list[FeedReading] = []
    for boot, lo, hi in context_ranges(fresh):
        ctx += context.device_readings(device_id, boot, lo, hi)
    spans = build_spans(fresh, ctx)
    for span in spans:
        det = detect(span.signal(), span.sample_rate)
        summary.beats += store.add_beats(device_id, span.keep_beats(det.peaks), REFRACTORY_S)
        for r in span.own_readings():
            store.put_segment(_segment(r, span, det), now)
            summary.analysed += 1
    for w0, w1 in _windows(spans):
        _evaluate(store, device_id, w0, w1, now, summary)


def analyse_batch(store: AnalysisStore, context: Context, batch: Sequence[FeedReading],
                  now: float) -> BatchSummary:
    """Analyse one batch (call inside `store.batch()`, which also commits the cursor)."""
    summary = BatchSummary()
    by_device: dict[str, list[FeedReading]] = {}
    for r in batch:
        by_device.setdefault(r.device_id, []).append(r)
    for device_id in sorted(by_device):
        analyse_device(store, context, sorted(by_device[device_id], key=lambda r: r.captured_at),
                       now, summary)
    return summary
