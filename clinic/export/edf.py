"""EDF+ (through `pyedflib`): one ECG signal in mV, with the gaps and lead-off as annotations.

--out PATH is the file written (name it .edf). The layout:

- header: EDF+C, patient code = the device id (EDF+ patient field: code, sex X, birthdate X,
  name "ecgpipe_patient"), recording "Startdate ... ecgpipe_export ecgpipe", start date and time
  = the first sample's UTC time (with its sub-second part, EDF+'s "starttime subsecond");
- the signal "ECG", dimension "mV", sample rate fs, digital range -32768..32767 (int16, the
  counts as stored), physical range = the same range times the gain (2.5 uV per count: -81.92 ..
  81.9175 mV), so physical = counts x gain within one count (EDF's 8-character header fields
  round the range a little). It covers every value the device can send;
- data records of 1 s (fs samples each). EDF+C has no holes, so the slots of a gap hold the
  digital minimum, -32768 (physical minimum), which is never data (a data sample of -32768
  is written as -32767); each gap is an annotation "gap" with its onset and duration. Where the
  signal ends inside a record, the rest of that record is filled the same way and annotated
  "no data (padding to a whole record)";
- annotations (EDF+ TALs, `EdfReader.readAnnotations()`): "gap" (onset, duration) per gap,
  "lead-off" per lead-off span, "overlap: N samples of boot B seq S dropped" where the overlap
  rule (segments.py) cut a reading, and the padding.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyedflib
from pyedflib._extensions._pyedflib import set_starttime_subsecond

from clinic.errors import BadRequestError
from clinic.export.outpath import atomic, out_file
from clinic.export.segments import INVALID, Timeline, grid_block, overlap_text
from clinic.export.times import utc_datetime

DIGITAL_MAX = 32767
MAX_ANNOTATION_SIGNALS = 64  # edflib's limit: annotations per record, at most
PAD_TEXT = "no data (padding to a whole record)"


def fit8(value: float) -> float:
    """`value` rounded so that its text fits EDF's 8-character field (no precision warning)."""
    for decimals in range(7, -1, -1):
        v = round(value, decimals)
        if len(str(v)) <= 8:
            return v
    raise BadRequestError(f"a physical range of {value} mV does not fit an EDF header")


def edf_annotations(tl: Timeline, records: int) -> list[tuple[float, float, str]]:
    """(onset s, duration s, text) of every annotation the file holds (module docstring)."""
    notes = [(tl.seconds(g.index), tl.seconds(g.samples), "gap") for g in tl.gaps]
    notes += [(tl.seconds(s.index), tl.seconds(s.samples), "lead-off") for s in tl.lead_off]
    notes += [(tl.seconds(p.index), 0.0, overlap_text(p)) for p in tl.placed if p.skip]
    pad = records * tl.fs - tl.length
    if pad:
        notes.append((tl.seconds(tl.length), tl.seconds(pad), PAD_TEXT))
    return sorted(notes)


def write_edf(tl: Timeline, path: Path | str) -> list[Path]:
    """Write the EDF+ file; returns the files written."""
    out = out_file(path, (".edf",))
    records = math.ceil(tl.length / tl.fs)
    notes = edf_annotations(tl, records)
    with atomic(out) as tmp:
        _write(tl, tmp, records, notes)
    return [out]


def _write(tl: Timeline, out: Path, records: int, notes: list[tuple[float, float, str]]) -> None:
    gain_mv = tl.gain_uv / 1000.0
    writer = pyedflib.EdfWriter(str(out), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setSignalHeaders([{
            "label": "ECG", "dimension": "mV", "sample_frequency": tl.fs,
            "physical_min": fit8(INVALID * gain_mv), "physical_max": fit8(DIGITAL_MAX * gain_mv),
            "digital_min": INVALID, "digital_max": DIGITAL_MAX, "transducer": "", "prefilter": ""}])
        writer.setPatientCode(tl.device_id)
        writer.setPatientName("ecgpipe_patient")
        writer.setEquipment("ecgpipe")
        writer.set_number_of_annotation_signals(
            min(MAX_ANNOTATION_SIGNALS, max(1, math.ceil(len(notes) / max(records, 1)) + 1)))
        _set_start(writer, tl.start)
        _write_records(writer, tl, records)
        for onset, duration, text in notes:
            writer.writeAnnotation(onset, duration, text)
    finally:
        writer.close()


def _set_start(writer: pyedflib.EdfWriter, t: float) -> None:
    """The start date/time, its sub-second part in EDF+'s units (100 ns). pyedflib 0.1.42 passes
    microseconds x 100 to edflib, 10 times too much (a start of .012345 s is written "+0.1234500",
    one past .099999 s not at all), and its EdfReader divides by the same 100; so the whole
    seconds go through setStartdatetime and the sub-second part straight to edflib, last of the
    header calls (each of them re-sends pyedflib's value). pyedflib's reader then shows a tenth
    of it; `EdfReader.starttime_subsecond` x 100 ns is the true part, as EDFbrowser reads it."""
    start = utc_datetime(t)
    writer.setStartdatetime(start.replace(microsecond=0))
    if start.microsecond and set_starttime_subsecond(writer.handle, start.microsecond * 10) < 0:
        raise BadRequestError(f"pyedflib refused the start time's sub-second part ({start.microsecond} us)")


def _write_records(writer: pyedflib.EdfWriter, tl: Timeline, records: int) -> None:
    """Every data record, one second of grid at a time (read in blocks of whole records)."""
    per_block = max(1, (1 << 20) // tl.fs)  # records per block read from the grid
    at = 0
    for first in range(0, records, per_block):
        n = min(per_block, records - first)
        start = first * tl.fs
        block, at = grid_block(tl, start, start + n * tl.fs, at)
        data = block.astype(np.int32)
        for k in range(n):
            if writer.blockWriteDigitalSamples(data[k * tl.fs:(k + 1) * tl.fs]) < 0:
                raise BadRequestError(f"pyedflib could not write data record {first + k}")
