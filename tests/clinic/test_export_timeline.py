"""clinic.export.segments: readings on one grid; gaps beyond half a sample, the overlap rule,
lead-off spans, refused mixtures, and the grid blocks every writer streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clinic.errors import BadRequestError, NoDataError
from clinic.export.run import load
from clinic.export.segments import INVALID, build_timeline, grid_block
from ingest.store_range import StoredReading
from tests.clinic.test_export_store import (
    DEVICE,
    DROPPED,
    FS,
    GAPS,
    LAYOUT,
    LEAD_OFF,
    LENGTH,
    T0,
    expected_grid,
    write_store,
)


def stored(seq: int, at: float, n: int = 10, *, rate: int = 100, gain: float = 1.0, boot: int = 1,
           flags: int = 0, device: str = "d") -> StoredReading:
    return StoredReading(rowid=0, device_id=device, boot_epoch=boot, seq=seq, captured_at=at, stored_at=at,
                         sample_rate_hz=rate, gain_uv=gain, samples=np.arange(n, dtype=np.int16) + seq * 100,
                         flags=flags, strip_id=0, chunk=0, chunks=1)


def test_the_store_scenario_lands_where_the_layout_says(tmp_path: Path) -> None:
    tl = build_timeline(DEVICE, load(write_store(tmp_path / "ingest.sqlite"), DEVICE))
    assert [(p.reading.boot_epoch, p.reading.seq, p.index, p.skip) for p in tl.placed] == \
        [(w.boot, w.seq, w.slot, w.skip) for w in LAYOUT]
    assert [(g.index, g.samples) for g in tl.gaps] == GAPS
    assert [(s.index, s.samples) for s in tl.lead_off] == LEAD_OFF
    assert [(o.boot_epoch, o.seq, o.dropped, o.whole) for o in tl.overlaps] == DROPPED
    assert tl.length == LENGTH
    assert tl.start == pytest.approx(T0, abs=1e-6)
    assert tl.fs == FS
    block, _ = grid_block(tl, 0, LENGTH)
    want = expected_grid()
    data = ~np.isnan(want)
    assert np.all(block[~data] == INVALID)
    assert np.all(np.abs(block[data] - want[data]) <= 1)  # -32768 in data becomes -32767


@pytest.mark.parametrize(("late_samples", "gap"), [(0.49, 0), (0.5, 0), (0.51, 1), (1.4, 1), (2.6, 3)])
def test_a_gap_is_a_start_later_than_half_a_sample(late_samples: float, gap: int) -> None:
    tl = build_timeline("d", [stored(0, 0.0), stored(1, 0.1 + late_samples / 100)])
    assert [g.samples for g in tl.gaps] == ([gap] if gap else [])
    assert tl.placed[1].index == 10 + gap
    assert tl.length == 20 + gap


def test_jitter_never_accumulates_into_a_drift() -> None:
    # each reading 0.3 samples late relative to the previous one's end: a gap every few readings
    readings = [stored(k, k * 0.103) for k in range(10)]
    tl = build_timeline("d", readings)
    for p in tl.placed:  # every reading within half a sample of its grid slot
        assert abs(tl.time_of(p.index) - p.reading.captured_at) <= 0.5 / 100 + 1e-9
    assert sum(g.samples for g in tl.gaps) == 3


def test_overlap_keeps_the_first_placed_and_cuts_the_later_head() -> None:
    tl = build_timeline("d", [stored(0, 0.0), stored(1, 0.05, boot=2), stored(2, 0.15, boot=2)])
    assert [(p.reading.seq, p.index, p.skip) for p in tl.placed] == [(0, 0, 0), (1, 10, 5), (2, 15, 0)]
    block, _ = grid_block(tl, 0, tl.length)
    assert block.tolist()[:10] == list(range(10))  # the first reading's samples are untouched
    assert block.tolist()[10:15] == [105, 106, 107, 108, 109]


def test_a_reading_wholly_inside_is_dropped_and_reported() -> None:
    tl = build_timeline("d", [stored(0, 0.0, 20), stored(1, 0.05, 5), stored(2, 0.2)])
    assert [p.reading.seq for p in tl.placed] == [0, 2]
    assert [(o.seq, o.dropped, o.whole) for o in tl.overlaps] == [(1, 5, True)]
    assert not tl.gaps


def test_same_capture_time_orders_by_seq() -> None:
    tl = build_timeline("d", [stored(5, 0.0), stored(4, 0.0)])
    assert [p.reading.seq for p in tl.placed] == [4]
    assert tl.overlaps[0].seq == 5


def test_lead_off_spans_merge_adjacent_readings_only() -> None:
    lead = 0x04
    tl = build_timeline("d", [stored(0, 0.0, flags=lead), stored(1, 0.1, flags=lead), stored(2, 0.2),
                              stored(3, 0.5, flags=lead)])
    assert [(s.index, s.samples) for s in tl.lead_off] == [(0, 20), (50, 10)]


@pytest.mark.parametrize("other", [{"rate": 200}, {"gain": 2.0}, {"device": "e"}])
def test_mixed_rates_gains_or_devices_are_refused(other: dict[str, object]) -> None:
    with pytest.raises(BadRequestError):
        build_timeline("d", [stored(0, 0.0), stored(1, 0.1, **other)])  # type: ignore[arg-type]  # mixed kwargs


def test_no_readings_is_no_data() -> None:
    with pytest.raises(NoDataError):
        build_timeline("d", [])


def test_grid_blocks_in_order_cover_the_grid_once() -> None:
    tl = build_timeline("d", [stored(k, k * 0.1 + (0.3 if k > 4 else 0)) for k in range(10)])
    whole, _ = grid_block(tl, 0, tl.length)
    parts, at = [], 0
    for start in range(0, tl.length, 7):
        part, at = grid_block(tl, start, min(start + 7, tl.length), at)
        parts.append(part)
    assert np.array_equal(np.concatenate(parts), whole)
    assert int((whole == INVALID).sum()) == 30
