"""EDF+ export read back by pyedflib.EdfReader: physical range and scaling, start date/time,
patient code, the samples, the gaps' digital minimum and annotations, and the last record's
padding (the scenario is 46.9 s long: not a whole number of 1-s records)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import numpy as np
import pyedflib
import pytest

from clinic.export.edf import PAD_TEXT, fit8
from clinic.export.run import export
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

RECORDS = math.ceil(LENGTH / FS)


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pyedflib.EdfReader]:
    tmp = tmp_path_factory.mktemp("edf")
    summary = export(write_store(tmp / "ingest.sqlite"), DEVICE, "edf", tmp / "hc.edf")
    assert summary["files"] == [str(tmp / "hc.edf")]
    f = pyedflib.EdfReader(str(tmp / "hc.edf"))
    try:
        yield f
    finally:
        f.close()


def test_header_round_trip(reader: pyedflib.EdfReader) -> None:
    assert reader.filetype == pyedflib.FILETYPE_EDFPLUS
    assert reader.getSignalLabels() == ["ECG"]
    assert reader.getSampleFrequency(0) == FS
    assert reader.getPhysicalDimension(0) == "mV"
    assert reader.getDigitalMinimum(0) == -32768
    assert reader.getDigitalMaximum(0) == 32767
    assert reader.getPhysicalMinimum(0) == pytest.approx(-32768 * GAIN_UV / 1000)
    assert reader.getPhysicalMaximum(0) == pytest.approx(32767 * GAIN_UV / 1000)
    assert reader.getPatientCode() == DEVICE
    assert reader.datarecords_in_file == RECORDS
    start = reader.getStartdatetime().replace(tzinfo=UTC, microsecond=0)
    # EDF+ keeps the sub-second start in 100-ns units (pyedflib's getStartdatetime shows a tenth
    # of it: clinic/export/edf.py, _set_start)
    assert abs(start.timestamp() + reader.starttime_subsecond * 1e-7 - T0) < 1e-6


def test_start_subsecond_is_edf_plus_first_tal(tmp_path: Path) -> None:
    summary = export(write_store(tmp_path / "ingest.sqlite"), DEVICE, "edf", tmp_path / "a.edf")
    raw = Path(summary["files"][0]).read_bytes()
    header_bytes = int(raw[184:192])
    frac = T0 - int(T0)
    assert f"+{frac:.7f}".encode() + b"\x14\x14" in raw[header_bytes:header_bytes + 2 * FS + 200]


def test_samples_round_trip_within_one_count(reader: pyedflib.EdfReader) -> None:
    digital = reader.readSignal(0, digital=True)
    physical = reader.readSignal(0)
    assert len(digital) == RECORDS * FS
    want = expected_grid()
    gaps = gap_mask()
    data = np.zeros(len(digital), dtype=bool)
    data[:LENGTH] = ~gaps
    assert np.all(digital[~data] == -32768)  # gaps and the padding: the digital minimum
    assert np.all(np.abs(digital[:LENGTH][~gaps] - want[~gaps]) <= 1)
    assert np.all(np.abs(physical[:LENGTH][~gaps] - want[~gaps] * GAIN_UV / 1000) <= GAIN_UV / 1000)


def test_gaps_lead_off_overlap_and_padding_are_annotations(reader: pyedflib.EdfReader) -> None:
    onsets, durations, texts = reader.readAnnotations()
    notes = list(zip(onsets.tolist(), durations.tolist(), texts.tolist(), strict=True))

    def at(text: str) -> list[tuple[float, float]]:
        return [(o, d) for o, d, t in notes if t == text]

    ms = 1e-4  # EDF+ annotation onsets are kept to 0.1 ms (edflib's unit)
    assert at("gap") == [pytest.approx((slot / FS, n / FS), abs=ms) for slot, n in GAPS]
    assert at("lead-off") == [pytest.approx((LEAD_OFF[0][0] / FS, LEAD_OFF[0][1] / FS), abs=ms)]
    assert any(t.startswith("overlap: 125 samples of boot 2 seq 40") for _, _, t in notes)
    assert at(PAD_TEXT) == [pytest.approx((LENGTH / FS, RECORDS - LENGTH / FS), abs=ms)]


@pytest.mark.parametrize("value", [-81.92, 81.9175, -40.45389312, 123456.789, -0.3276812, 7.0])
def test_physical_range_fits_eight_characters(value: float) -> None:
    v = fit8(value)
    assert len(str(v)) <= 8
    assert abs(v - value) <= abs(value) * 1e-4 + 1e-7
