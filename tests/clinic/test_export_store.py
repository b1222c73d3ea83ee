"""The exports' test store: a real ingest SQLite store with an outage's gaps, a reboot's overlap
and lead-off (built through wire.Reading, ingest.validate and SqliteStore), the layout every
export must show, and the tests of reading it (clinic.export.run.load, times)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from clinic.errors import BadRequestError, NoDataError
from clinic.export.run import check_request, load
from clinic.export.times import parse_time, utc_iso
from ingest.store import SqliteStore
from ingest.store_open import open_store
from ingest.validate import Accepted, validate
from wire import Reading, encode_reading
from wire.reading import FLAG_LEAD_OFF

T0 = 1_796_000_000.123456  # the first sample: not a whole second, so base times are checked to the ms
FS = 250
GAIN_UV = 2.5
DEVICE = "hc-exp1"
OTHER = "hc-other"


@dataclass(frozen=True)
class Spec:
    """One reading to store: its key, capture time (s after T0) and length."""

    boot: int
    seq: int
    at: float
    n: int = FS
    flags: int = 0
    strip: int = 0
    chunk: int = 0
    chunks: int = 1


@dataclass(frozen=True)
class Where:
    """Where the export must put a reading: grid slot of its first kept sample, samples cut."""

    boot: int
    seq: int
    slot: int
    skip: int


def counts_of(boot: int, seq: int, n: int) -> npt.NDArray[np.int16]:
    """A reading's samples: deterministic, different per reading; seq 3 holds -32768 at 10."""
    rng = np.random.default_rng(boot * 100_000 + seq)
    out = rng.integers(-3000, 3000, n).astype(np.int16)
    if seq == 3:
        out[10] = -32768
    return out


# boot 1: seq 0..19 (seq 7 starts 1.2 ms late: a jitter below half a sample, no gap), seq 20..24
# lost in the outage (a 5-s gap), 25..39 (30 and 31 lead-off); then the device reboots and its
# clock is half a second behind: boot 2 seq 40 overlaps seq 39 by 125 samples, seq 42 (100
# samples) lies wholly inside seq 41, 43..45 continue, 46 comes after a 2-s gap and is short.
SPECS = (
    [Spec(1, k, k + (0.0012 if k == 7 else 0.0)) for k in range(20)]
    + [Spec(1, k, float(k), flags=FLAG_LEAD_OFF if k in (30, 31) else 0) for k in range(25, 40)]
    + [Spec(2, 40, 39.5), Spec(2, 41, 40.5), Spec(2, 42, 41.0, n=100)]
    + [Spec(2, 43 + i, 41.5 + i) for i in range(3)] + [Spec(2, 46, 46.5, n=100)])
LAYOUT = ([Where(1, k, k * FS, 0) for k in range(20)] + [Where(1, k, k * FS, 0) for k in range(25, 40)]
          + [Where(2, 40, 10_000, 125), Where(2, 41, 10_125, 0)]
          + [Where(2, 43 + i, 10_375 + i * FS, 0) for i in range(3)] + [Where(2, 46, 11_625, 0)])
GAPS = [(5000, 1250), (11_125, 500)]  # (first slot, slots)
LEAD_OFF = [(7500, 500)]
LENGTH = 11_725  # slots: 46.9 s, not a whole number of EDF records
DROPPED = [(2, 40, 125, False), (2, 42, 100, True)]  # (boot, seq, samples dropped, whole)


def spec_of(boot: int, seq: int) -> Spec:
    return next(s for s in SPECS if (s.boot, s.seq) == (boot, seq))


def expected_grid() -> npt.NDArray[np.float64]:
    """The counts every export must give back, slot by slot; NaN in the gaps."""
    grid = np.full(LENGTH, np.nan)
    for w in LAYOUT:
        c = counts_of(w.boot, w.seq, spec_of(w.boot, w.seq).n)[w.skip:]
        grid[w.slot:w.slot + len(c)] = c
    return grid


def gap_mask() -> npt.NDArray[np.bool_]:
    mask = np.zeros(LENGTH, dtype=bool)
    for slot, n in GAPS:
        mask[slot:slot + n] = True
    return mask


def reading(device_id: str, s: Spec, t0: float = T0) -> Reading:
    return Reading(device_id=device_id, boot_epoch=s.boot, seq=s.seq, captured_at=t0 + s.at,
                   sample_rate_hz=FS, gain_uv=GAIN_UV, samples=counts_of(s.boot, s.seq, s.n),
                   flags=s.flags, strip_id=s.strip, chunk=s.chunk, chunks=s.chunks)


def write_store(db: Path, device_id: str = DEVICE, specs: list[Spec] = SPECS,
                others: int = 3, dsn: str | None = None) -> Path:
    """Store `specs` of `device_id` (and `others` readings of another device) in a new ingest
    store for `db` (a state dir's ingest/ingest.sqlite), through the ingest service's own
    validation and store: SQLite, or with `dsn` PostgreSQL (db's folder then gets store.json)."""
    accepted = []
    rows = [reading(device_id, s) for s in specs]
    rows += [reading(OTHER, Spec(1, k, float(k))) for k in range(others)]
    for r in rows:
        v = validate(f"heartcheck/{r.device_id}/ecg", encode_reading(r), r.captured_at + 5)
        assert isinstance(v, Accepted), v
        accepted.append(v)
    store = open_store(db.parent, dsn) if dsn else SqliteStore(db)
    try:
        store.store_batch(accepted, [], max(r.captured_at for r in rows) + 10)
    finally:
        store.close()
    return db


@pytest.fixture
def store_db(tmp_path: Path) -> Path:
    return write_store(tmp_path / "ingest" / "ingest.sqlite")


def test_load_reads_only_the_device_in_capture_order(store_db: Path) -> None:
    got = load(store_db, DEVICE)
    assert [(r.boot_epoch, r.seq) for r in got] == sorted(((s.boot, s.seq) for s in SPECS),
                                                          key=lambda k: spec_of(*k).at)
    assert {r.device_id for r in got} == {DEVICE}


def test_load_range_is_half_open_on_capture_time(store_db: Path) -> None:
    got = load(store_db, DEVICE, T0 + 25, T0 + 30)
    assert [r.seq for r in got] == [25, 26, 27, 28, 29]


def test_unknown_device_names_the_devices_that_have_readings(store_db: Path) -> None:
    with pytest.raises(NoDataError, match=f"no readings stored for device 'hc-nope'.*{DEVICE}, {OTHER}"):
        load(store_db, "hc-nope")


def test_empty_range_says_where_the_device_starts(store_db: Path) -> None:
    with pytest.raises(NoDataError, match=f"no readings captured in .*its first is at {utc_iso(T0)[:19]}"):
        load(store_db, DEVICE, T0 + 1000)


def test_missing_store_reads_as_empty(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="the store is empty"):
        load(tmp_path / "ingest.sqlite", DEVICE)


@pytest.mark.parametrize(("text", "value"), [
    ("1796000000.5", 1_796_000_000.5), ("2026-11-30T00:53:20Z", 1_796_000_000.0),
    ("2026-11-30T00:53:20", 1_796_000_000.0), ("2026-11-30 01:53:20+01:00", 1_796_000_000.0),
    ("2026-11-30T00:53:20.25z", 1_796_000_000.25), ("2026-11-30", 1_795_996_800.0)])
def test_times_are_iso_8601_utc_by_default_or_unix_seconds(text: str, value: float) -> None:
    assert parse_time(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["yesterday", "", "-5", "nan", "inf", "1e20", "1900-01-01", "2026-13-01",
                                  "12:00"])
def test_a_bad_time_is_one_clear_line(text: str) -> None:
    with pytest.raises(BadRequestError, match="is not a time") as exc:
        parse_time(text)
    assert "\n" not in str(exc.value)


def test_requests_are_checked_before_reading(tmp_path: Path) -> None:
    with pytest.raises(BadRequestError, match="unknown format"):
        check_request("xml", tmp_path / "a.xml")
    with pytest.raises(BadRequestError, match="must be after --from"):
        check_request("csv", tmp_path / "a.csv", 10.0, 10.0)
    with pytest.raises(BadRequestError, match="does not exist"):
        check_request("edf", tmp_path / "nope" / "a.edf")
    with pytest.raises(BadRequestError, match="is a directory"):
        check_request("fhir", tmp_path)
    with pytest.raises(BadRequestError, match="WFDB record name"):
        check_request("wfdb", tmp_path / "a.b.c")
    check_request("wfdb", tmp_path / "rec.hea")  # an extension given is taken off
