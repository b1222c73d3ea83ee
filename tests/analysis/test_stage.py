"""The analysis of one patient's record, batch by batch, as the process would run it: each
injected episode raises its event exactly once, with the right onset, whether the readings
arrive live, out of order from a backlog, or twice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from analysis import store_view
from analysis.model import Event
from analysis.stage import analyse_batch
from analysis.store import AnalysisStore
from ingest.store_feed import FeedReading
from tests.analysis.conftest import Record
from tests.analysis.synth import T0, FakeContext, chunk, render, rhythm

# how close an onset must be: a beat or two of the rhythm at the change
ONSET_TOLERANCE_S = {"brady": 2 * 60 / 35, "tachy": 2 * 60 / 70, "pause": 0.05, "af": 3.0}


def feed(db: Path, batches: Sequence[Sequence[FeedReading]], ctx: FakeContext | None = None,
         now: float | None = None) -> FakeContext:
    """Store and analyse each batch in turn; `now` (default: the batch's last stored_at)."""
    ctx = ctx or FakeContext()
    store = AnalysisStore(db)
    try:
        for batch in batches:
            ctx.add(list(batch))
            with store.batch():
                analyse_batch(store, ctx, batch, now if now is not None else max(r.stored_at for r in batch))
    finally:
        store.close()
    return ctx


def by_kind(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for e in events:
        out.setdefault(e.kind, []).append(e)
    return out


def assert_injected_once(events: list[Event], record: Record) -> None:
    kinds = by_kind(events)
    assert sorted(kinds) == ["af", "brady", "pause", "tachy"], [(e.kind, e.onset - T0) for e in events]
    for kind, evs in kinds.items():
        assert len(evs) == 1, f"{kind} raised {len(evs)} times: {[e.onset - T0 for e in evs]}"
        (ev,) = evs
        assert abs(ev.onset - record.onsets[kind]) <= ONSET_TOLERANCE_S[kind], (
            kind, ev.onset - T0, record.onsets[kind] - T0)
        assert ev.end is not None and abs(ev.end - record.ends[kind]) <= ONSET_TOLERANCE_S[kind] + 1.5, (
            kind, ev.end, record.ends[kind])


def test_live_readings_raise_each_injected_episode_once(tmp_path: Path, record: Record) -> None:
    db = tmp_path / "a.sqlite"
    feed(db, [[r] for r in record.readings])
    events = store_view.events(db)
    assert_injected_once(events, record)
    for e in events:  # live: the system knew within the rules' windows, not later
        assert e.raised_at - e.onset < 40, (e.kind, e.raised_at - e.onset)
    assert by_kind(events)["brady"][0].evidence["hr_bpm"] < 40
    assert by_kind(events)["tachy"][0].evidence["hr_bpm"] > 150
    assert by_kind(events)["af"][0].evidence["nrmssd"] > 0.1


def test_detected_beats_match_the_injected_ones(tmp_path: Path, record: Record) -> None:
    db = tmp_path / "a.sqlite"
    feed(db, [record.readings[i : i + 7] for i in range(0, len(record.readings), 7)])
    got = store_view.detected_beats(db, "hc-0001", 0, 2e9)
    near = np.abs(record.beats[:, None] - got[None, :]).min(axis=1)
    assert np.mean(near <= 0.05) > 0.99  # sensitivity
    back = np.abs(got[:, None] - record.beats[None, :]).min(axis=1)
    assert np.mean(back <= 0.05) > 0.98  # positive predictivity (35 bpm: a T wave now and then)
    assert np.all(np.diff(got) >= 0.2)  # no beat twice


def test_a_backlog_filling_a_gap_raises_its_events_late_and_once(tmp_path: Path, record: Record) -> None:
    rs = record.readings
    gap = [r for r in rs if 110 <= r.captured_at - T0 < 200]  # holds the whole tachycardia
    live = [r for r in rs if r not in gap]
    db = tmp_path / "a.sqlite"
    ctx = feed(db, [[r] for r in live])
    before = by_kind(store_view.events(db))
    assert "tachy" not in before  # its readings have not arrived
    late = live[-1].stored_at + 3 * 3600.0  # the backlog arrives three hours later
    feed(db, [gap[i : i + 25] for i in range(0, len(gap), 25)], ctx, now=late)
    events = store_view.events(db)
    assert_injected_once(events, record)
    tachy = by_kind(events)["tachy"][0]
    assert tachy.raised_at == late and tachy.raised_at - tachy.onset > 3 * 3600
    for kind in ("brady", "pause", "af"):  # raised live, not moved by the backlog
        assert by_kind(events)[kind][0].raised_at == before[kind][0].raised_at


def test_readings_in_reverse_order_raise_the_same_events(tmp_path: Path, record: Record) -> None:
    db = tmp_path / "a.sqlite"
    rs = record.readings
    feed(db, [rs[i : i + 30] for i in range(0, len(rs), 30)][::-1])
    assert_injected_once(store_view.events(db), record)


def test_redelivery_raises_nothing_twice(tmp_path: Path, record: Record) -> None:
    db = tmp_path / "a.sqlite"
    rs = record.readings
    ctx = feed(db, [rs[i : i + 10] + rs[i : i + 3] for i in range(0, len(rs), 10)])  # copies inside a batch
    first = store_view.events(db)
    assert_injected_once(first, record)
    beats = store_view.detected_beats(db, "hc-0001", 0, 2e9)
    feed(db, [rs[i : i + 50] for i in range(0, len(rs), 50)], ctx, now=T0 + 99_999)  # everything again
    assert store_view.events(db) == first  # not even raised_at or updated_at moved
    assert np.array_equal(store_view.detected_beats(db, "hc-0001", 0, 2e9), beats)
    assert store_view.progress(db)["devices"] == 1


def test_lead_off_is_unreadable_and_not_a_pause(tmp_path: Path) -> None:
    beats, _ = rhythm(np.random.default_rng(1), [("sinus", 80, 70)])
    x = render(beats, 80.0)
    x[30 * 250 : 40 * 250] = 0.0  # the electrode came off: flat
    rs = chunk("hc-0002", x)
    rs = [chunk("hc-0002", x[r.seq * 250 : (r.seq + 1) * 250], t0=r.captured_at, first_seq=r.seq,
                flags=0x04 if 30 <= r.seq < 40 else 0)[0] for r in rs]
    db = tmp_path / "a.sqlite"
    feed(db, [[r] for r in rs])
    events = store_view.events(db)
    assert [e.kind for e in events] == ["unreadable"], [(e.kind, e.onset - T0) for e in events]
    (ev,) = events
    assert (ev.onset - T0, ev.end and ev.end - T0) == (30.0, 40.0) and ev.evidence["lead_off"] is True


def test_noise_without_ecg_is_unreadable(tmp_path: Path) -> None:
    beats, _ = rhythm(np.random.default_rng(2), [("sinus", 90, 70)])
    x = render(beats, 90.0)
    x[30 * 250 : 60 * 250] = np.random.default_rng(5).normal(0, 0.5, 30 * 250)
    db = tmp_path / "a.sqlite"
    feed(db, [[r] for r in chunk("hc-0003", x)])
    kinds = by_kind(store_view.events(db))
    assert list(kinds) == ["unreadable"] and len(kinds["unreadable"]) == 1, kinds  # no pause, no brady
    (ev,) = kinds["unreadable"]
    assert 25 <= ev.onset - T0 <= 36 and ev.end is not None and 55 <= ev.end - T0 <= 66


def test_each_strip_is_analysed_on_its_own(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    brady_beats, _ = rhythm(rng, [("brady", 30, 36)])
    sinus_beats, _ = rhythm(rng, [("sinus", 30, 72)])
    strip1 = chunk("hc-0004", render(brady_beats, 30.0), chunk_s=30.0, strip=True)
    strip2 = chunk("hc-0004", render(sinus_beats, 30.0), t0=T0 + 8 * 3600, chunk_s=30.0, first_seq=1,
                   strip=True)
    db = tmp_path / "a.sqlite"
    feed(db, [strip2, strip1])  # the later strip first
    events = store_view.events(db)
    assert [e.kind for e in events] == ["brady"], [(e.kind, e.onset - T0) for e in events]
    assert events[0].onset < T0 + 30 and events[0].end is not None and events[0].end <= T0 + 30
