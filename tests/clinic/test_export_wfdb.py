"""WFDB export read back by `wfdb`: fs, units, gain, base date/time, the samples, NaN in the
gaps, and an annotation at each gap (its length in the aux note), lead-off and overlap."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clinic.export.run import export
from clinic.export.wfdb_out import ANN_EXT, quiet, wfdb_module
from tests.clinic.test_export_store import (
    DEVICE,
    FS,
    GAIN_UV,
    GAPS,
    LEAD_OFF,
    LENGTH,
    T0,
    expected_grid,
    gap_mask,
    write_store,
)


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("wfdb")
    db = write_store(tmp / "ingest.sqlite")
    summary = export(db, DEVICE, "wfdb", tmp / "rec")
    return tmp / "rec", summary


def rd(rec: Path, **kw: Any) -> Any:
    with quiet():
        return wfdb_module().rdrecord(str(rec), **kw)


def test_files_written_are_the_record_and_its_annotations(record: tuple[Path, dict[str, Any]]) -> None:
    rec, summary = record
    assert summary["files"] == [str(rec) + ".hea", str(rec) + ".dat", f"{rec}.{ANN_EXT}"]
    assert all(Path(f).is_file() for f in summary["files"])
    assert Path(str(rec) + ".dat").stat().st_size == 2 * LENGTH  # fmt 16, gaps included


def test_header_round_trip(record: tuple[Path, dict[str, Any]]) -> None:
    r = rd(record[0])
    assert r.fs == FS
    assert r.units == ["mV"]
    assert r.adc_gain == [pytest.approx(1000 / GAIN_UV)]
    assert r.baseline == [0]
    assert r.fmt == ["16"]
    assert r.sig_len == LENGTH
    base = datetime.combine(r.base_date, r.base_time).replace(tzinfo=UTC)
    assert abs(base.timestamp() - T0) < 0.001  # WFDB keeps milliseconds


def test_samples_round_trip_with_nan_in_the_gaps(record: tuple[Path, dict[str, Any]]) -> None:
    physical = rd(record[0]).p_signal[:, 0]
    want = expected_grid()
    gaps = gap_mask()
    assert np.array_equal(np.isnan(physical), gaps)
    assert np.all(np.abs(physical[~gaps] / (GAIN_UV / 1000) - want[~gaps]) <= 1.0 + 1e-6)
    digital = rd(record[0], physical=False).d_signal[:, 0]
    assert np.all(np.abs(digital[~gaps] - want[~gaps]) <= 1)  # -32768 comes back as -32767
    assert int(np.sum(digital[~gaps] != want[~gaps])) == 1


def test_one_annotation_per_gap_at_its_sample_with_its_length(record: tuple[Path, dict[str, Any]]) -> None:
    with quiet():
        ann = wfdb_module().rdann(str(record[0]), ANN_EXT)
    notes = list(zip(ann.sample.tolist(), ann.symbol, ann.aux_note, strict=True))
    gaps = [(s, a) for s, sym, a in notes if a.startswith("gap")]
    assert [s for s, _ in gaps] == [slot for slot, _ in GAPS]
    assert [a for _, a in gaps] == [f"gap {n / FS:.3f} s ({n} samples)" for _, n in GAPS]
    assert [(s, sym) for s, sym, a in notes if a.startswith("lead-off")] == [(LEAD_OFF[0][0], "~")]
    overlaps = [a for _, _, a in notes if a.startswith("overlap")]
    assert overlaps == ["overlap: 125 samples of boot 2 seq 40 dropped"]


def test_summary_lists_gaps_with_start_and_duration(record: tuple[Path, dict[str, Any]]) -> None:
    gaps = record[1]["gaps"]
    assert [(g["sample_index"], g["samples"]) for g in gaps] == GAPS
    assert gaps[0]["start"] == pytest.approx(T0 + 20.0, abs=1e-6)
    assert gaps[0]["duration_s"] == pytest.approx(5.0)


def test_no_gaps_no_annotations_and_no_stale_file(tmp_path: Path) -> None:
    db = write_store(tmp_path / "ingest.sqlite")
    stale = tmp_path / f"rec.{ANN_EXT}"
    stale.write_bytes(b"from an earlier export")
    summary = export(db, DEVICE, "wfdb", tmp_path / "rec.hea", start=T0, end=T0 + 10)  # seq 0..9
    assert summary["gaps"] == []
    assert summary["files"] == [str(tmp_path / "rec.hea"), str(tmp_path / "rec.dat")]
    assert not stale.exists()
    assert rd(tmp_path / "rec").sig_len == 10 * FS
