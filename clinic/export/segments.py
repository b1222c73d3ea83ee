"""A device's stored readings laid on one sample grid: continuous runs, gaps, overlaps, lead-off.

Every export format writes from this timeline, so they all show the same gaps and the same
samples. The grid starts at the first reading's first sample (t0) and has one slot per sample
period (1/fs); slot i is at t0 + i/fs. Readings are taken in capture order (captured_at, then
seq), and each is compared with the grid time just after what is already placed (the cursor):

- it starts within half a sample period of the cursor: it continues the run (placed at the
  cursor; a capture jitter below half a sample never makes a gap);
- it starts later by more than half a sample period: a **gap** of round(offset x fs) slots
  (at least 1) lies between, and the reading starts a new run after it. Nothing is ever joined
  across a gap: every writer shows it (docs/exports.md);
- it starts earlier by more than half a sample period (possible after a device reboot, whose
  clock may step back, or when two boots' readings interleave): an **overlap**. The rule:
  **first placed wins**: the samples already on the grid stay, the later reading's first
  round(-offset x fs) samples are dropped and only its rest is placed; a reading wholly inside
  what is placed is dropped whole. Each overlap is reported (the reading's key and the samples
  dropped), never silently merged.

Readings flagged lead-off (wire FLAG_LEAD_OFF) are placed as data and reported as lead-off
spans (consecutive ones merged) that the writers annotate. All readings must share one sample
rate and one gain (one device's fleet settings); a timeline that mixes them is refused with
one clear line (export a range that does not).

Nothing here copies samples: a Placed holds its reading and the slice it contributes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clinic.errors import BadRequestError, NoDataError
from ingest.store_range import StoredReading
from wire.reading import FLAG_LEAD_OFF

INVALID = -32768  # int16's minimum: "no sample here" in WFDB fmt 16 and the EDF export's gap value
TIME_RESOLUTION = 1e-6  # s: capture times travel as whole microseconds


@dataclass(frozen=True, eq=False)
class Placed:
    """A reading on the grid: its samples from `skip` on occupy slots [index, index + n)."""

    reading: StoredReading
    index: int
    skip: int = 0

    @property
    def n(self) -> int:
        return len(self.reading.samples) - self.skip

    @property
    def end(self) -> int:
        return self.index + self.n

    def counts(self) -> npt.NDArray[np.int16]:
        """The placed samples (a view, no copy)."""
        return self.reading.samples[self.skip:]

    @property
    def lead_off(self) -> bool:
        return bool(self.reading.flags & FLAG_LEAD_OFF)


@dataclass(frozen=True)
class Span:
    """Slots [index, index + samples) of the grid: a gap, or a lead-off stretch."""

    index: int
    samples: int

    @property
    def end(self) -> int:
        return self.index + self.samples


@dataclass(frozen=True)
class Overlap:
    """A reading that began before the end of what was placed: `dropped` samples of its head
    were not placed (all of them when `whole`)."""

    boot_epoch: int
    seq: int
    captured_at: float
    dropped: int
    whole: bool


@dataclass(frozen=True, eq=False)
class Timeline:
    """One device's readings on one grid (module docstring)."""

    device_id: str
    start: float  # t0: the capture time of slot 0 (Unix s, UTC)
    fs: int
    gain_uv: float
    placed: tuple[Placed, ...]
    gaps: tuple[Span, ...]
    overlaps: tuple[Overlap, ...]
    lead_off: tuple[Span, ...]

    @property
    def length(self) -> int:
        """Slots from the first sample to just after the last, gaps included."""
        return self.placed[-1].end

    @property
    def samples(self) -> int:
        """Samples placed (data, not gap slots)."""
        return sum(p.n for p in self.placed)

    def time_of(self, index: int) -> float:
        return self.start + index / self.fs

    def seconds(self, slots: int) -> float:
        return slots / self.fs

    @property
    def end(self) -> float:
        return self.time_of(self.length)


def build_timeline(device_id: str, readings: Sequence[StoredReading]) -> Timeline:
    """Lay `readings` (one device's) on a grid; NoDataError if there are none, BadRequestError if
    they mix devices, sample rates or gains."""
    if not readings:
        raise NoDataError(f"no readings of device {device_id} to export")
    ordered = sorted(readings, key=lambda r: (r.captured_at, r.seq))
    first = ordered[0]
    _check_uniform(device_id, ordered)
    fs = first.sample_rate_hz
    placed: list[Placed] = []
    gaps: list[Span] = []
    overlaps: list[Overlap] = []
    cursor = 0
    for r in ordered:
        offset = (r.captured_at - (first.captured_at + cursor / fs)) * fs  # in samples
        half = 0.5 + TIME_RESOLUTION * fs  # exactly half a sample is not a gap, float noise aside
        if offset > half and placed:
            slots = max(1, round(offset))
            gaps.append(Span(cursor, slots))
            cursor += slots
        skip = max(1, round(-offset)) if offset < -half else 0
        if skip:
            whole = skip >= len(r.samples)
            overlaps.append(Overlap(r.boot_epoch, r.seq, r.captured_at,
                                    min(skip, len(r.samples)), whole))
            if whole:
                continue
        p = Placed(r, cursor, skip)
        placed.append(p)
        cursor = p.end
    return Timeline(device_id=device_id, start=first.captured_at, fs=fs, gain_uv=first.gain_uv,
                    placed=tuple(placed), gaps=tuple(gaps), overlaps=tuple(overlaps),
                    lead_off=tuple(_lead_off_spans(placed)))


def _check_uniform(device_id: str, readings: Sequence[StoredReading]) -> None:
    first = readings[0]
    for r in readings:
        if r.device_id != device_id:
            raise BadRequestError(f"a reading of device {r.device_id} among {device_id}'s")
        if r.sample_rate_hz != first.sample_rate_hz or r.gain_uv != first.gain_uv:
            raise BadRequestError(
                f"{device_id}'s readings change from {first.sample_rate_hz} Hz, {first.gain_uv} uV"
                f" per count to {r.sample_rate_hz} Hz, {r.gain_uv} uV at seq {r.seq}; export a"
                " range with one sample rate and gain (--from/--to)")


def overlap_text(p: Placed) -> str:
    """The note the writers put where the overlap rule cut a reading."""
    return f"overlap: {p.skip} samples of boot {p.reading.boot_epoch} seq {p.reading.seq} dropped"


def _lead_off_spans(placed: Sequence[Placed]) -> list[Span]:
    """The lead-off readings' slots, adjacent ones merged into one span."""
    spans: list[Span] = []
    for p in placed:
        if not p.lead_off:
            continue
        if spans and spans[-1].end == p.index:
            spans[-1] = Span(spans[-1].index, spans[-1].samples + p.n)
        else:
            spans.append(Span(p.index, p.n))
    return spans


def grid_block(timeline: Timeline, start: int, stop: int, placed_from: int = 0
               ) -> tuple[npt.NDArray[np.int16], int]:
    """Slots [start, stop) as int16 counts, INVALID where there is no sample, and the index of
    the first Placed a later block needs (pass it back as `placed_from` to start the search
    there; any block is a binary search away). A data sample equal to INVALID is written as
    INVALID + 1 (one count: the value is reserved for "no sample", as in WFDB)."""
    block = np.full(stop - start, INVALID, dtype=np.int16)
    placed = timeline.placed
    i = bisect_right(placed, start, lo=placed_from, key=_end)  # the first that ends after start
    j = i
    while j < len(placed) and placed[j].index < stop:
        p = placed[j]
        lo, hi = max(p.index, start), min(p.end, stop)
        block[lo - start:hi - start] = p.counts()[lo - p.index:hi - p.index]
        j += 1
    np.maximum(block, INVALID + 1, out=block, where=_data_mask(timeline, start, stop, i, j))
    return block, i


def _end(p: Placed) -> int:
    return p.end


def _data_mask(timeline: Timeline, start: int, stop: int, i: int, j: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros(stop - start, dtype=bool)
    for p in timeline.placed[i:j]:
        mask[max(p.index, start) - start:min(p.end, stop) - start] = True
    return mask
