"""CSV export read back by the csv module: the header states units, one row per sample with
its time and reading, a row per gap (empty value, its length), lead-off marked."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from clinic.export.csvfile import HEADER
from clinic.export.run import export
from clinic.export.times import parse_time
from tests.clinic.test_export_store import (
    DEVICE,
    FS,
    GAIN_UV,
    GAPS,
    LAYOUT,
    T0,
    counts_of,
    spec_of,
    write_store,
)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("csv")
    summary = export(write_store(tmp / "ingest.sqlite"), DEVICE, "csv", tmp / "hc.csv")
    with Path(summary["files"][0]).open(newline="") as f:
        assert f.readline().strip() == HEADER
        f.seek(0)
        return list(csv.DictReader(f))


def test_header_states_the_units() -> None:
    assert HEADER.split(",")[:3] == ["time_utc", "seconds_since_start", "ecg_mV"]


def test_one_row_per_placed_sample_in_order(rows: list[dict[str, str]]) -> None:
    data = [r for r in rows if r["ecg_mV"]]
    want = [(w.boot, w.seq, w.slot + i, c) for w in LAYOUT
            for i, c in enumerate(counts_of(w.boot, w.seq, spec_of(w.boot, w.seq).n)[w.skip:].tolist())]
    assert len(data) == len(want)
    for r, (boot, seq, slot, count) in zip(data, want, strict=True):
        assert (int(r["boot_epoch"]), int(r["seq"])) == (boot, seq)
        assert float(r["seconds_since_start"]) == pytest.approx(slot / FS, abs=1e-6)
        assert float(r["ecg_mV"]) == pytest.approx(count * GAIN_UV / 1000, abs=1e-6)
    times = [parse_time(r["time_utc"]) for r in rows]
    assert times == sorted(times)
    assert times[0] == pytest.approx(T0, abs=1e-6)


def test_each_gap_is_one_row_with_an_empty_value_and_its_length(rows: list[dict[str, str]]) -> None:
    gaps = [(i, r) for i, r in enumerate(rows) if r["gap_s"]]
    slots = [(round(float(r["seconds_since_start"]) * FS), round(float(r["gap_s"]) * FS)) for _, r in gaps]
    assert slots == GAPS
    for i, r in gaps:
        assert r["ecg_mV"] == r["seq"] == r["boot_epoch"] == ""
        before, after = rows[i - 1], rows[i + 1]  # a gap row sits between the samples around it
        assert float(before["seconds_since_start"]) < float(r["seconds_since_start"])
        assert float(after["seconds_since_start"]) == pytest.approx(float(r["seconds_since_start"])
                                                                  + float(r["gap_s"]), abs=1e-6)


def test_lead_off_rows_are_marked(rows: list[dict[str, str]]) -> None:
    marked = {int(r["seq"]) for r in rows if r["lead_off"] == "1"}
    assert marked == {30, 31}
    assert np.sum([r["lead_off"] == "1" for r in rows]) == 2 * FS


@pytest.mark.parametrize("fmt", ["csv", "edf", "fhir"])
def test_a_failed_export_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    db = write_store(tmp_path / "store" / "ingest.sqlite")
    out = tmp_path / f"x.{fmt}"
    out.write_text("an earlier export")

    def broken(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    for module in ("csvfile", "edf", "fhir"):  # every writer's way to the grid or its readings
        target = "slot_times" if module == "csvfile" else "grid_block"
        monkeypatch.setattr(f"clinic.export.{module}.{target}", broken)
    with pytest.raises(KeyboardInterrupt):
        export(db, DEVICE, fmt, out)
    assert out.read_text() == "an earlier export"  # untouched: the new one was never complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", out.name]  # no partial file left
