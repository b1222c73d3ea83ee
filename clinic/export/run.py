"""One export: read a device's readings from the store, lay them on the timeline, write a format.

    summary = export(db_path, "hc-0001", "wfdb", Path("out/hc0001"), start=None, end=None)

`db_path` is a state dir's `ingest/ingest.sqlite` (PostgreSQL when ingest/store.json says so:
ingest/store_range.py reads both, in one snapshot, so an export of a running stack is
consistent). It reads at most store_range.MAX_READINGS readings (the earliest of the range;
`truncated` says so) and keeps them once: the writers stream the grid from them in blocks.
WFDB and EDF+ write a slot per sample period, gaps included, so their timeline is bounded
(MAX_SLOTS); FHIR and CSV write only the samples (and a row or "E"s for gaps).

The summary (what `ecgpipe export --json` prints) is plain JSON: the device, the format, the
range asked, the first sample and the end, readings, samples, the gaps (start, duration), the
overlaps, the lead-off spans, `truncated` and the files written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clinic.errors import BadRequestError, NoDataError
from clinic.export.csvfile import write_csv
from clinic.export.edf import write_edf
from clinic.export.fhir import write_fhir
from clinic.export.outpath import out_file
from clinic.export.segments import Timeline, build_timeline
from clinic.export.times import utc_iso
from clinic.export.wfdb_out import record_path, write_wfdb
from ingest.store_range import MAX_READINGS, StoredReading, device_ids, device_readings

FORMATS = ("wfdb", "edf", "fhir", "csv")
SUFFIX = {"wfdb": "", "edf": ".edf", "fhir": ".json", "csv": ".csv"}
MAX_SLOTS = 200_000_000  # WFDB/EDF+: 400 MB of samples, gaps included (9 days at 250 Hz)


def check_request(fmt: str, out: Path | str, start: float | None = None,
                  end: float | None = None) -> None:
    """What can be refused before reading anything (BadRequestError, one line): the format,
    the --out path (its folder must exist; WFDB's record name) and the range."""
    if fmt not in FORMATS:
        raise BadRequestError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if start is not None and end is not None and end <= start:
        raise BadRequestError(f"--to ({utc_iso(end)}) must be after --from ({utc_iso(start)})")
    if fmt == "wfdb":
        record_path(out)
    else:
        out_file(out, (SUFFIX[fmt],))


def load(db_path: Path | str, device_id: str, start: float | None = None,
         end: float | None = None) -> list[StoredReading]:
    """The device's readings in [start, end); NoDataError (one line) when there are none."""
    readings = device_readings(db_path, device_id, start, end, limit=MAX_READINGS)
    if readings:
        return readings
    known = device_ids(db_path)
    if device_id not in known:
        listed = ", ".join(known[:5]) + (f" and {len(known) - 5} more" if len(known) > 5 else "")
        raise NoDataError(f"no readings stored for device {device_id!r} in {db_path}"
                          + (f" (devices with readings: {listed})" if known else " (the store is empty)"))
    whole = device_readings(db_path, device_id, None, None, limit=1)
    asked = f"[{_when(start)}, {_when(end)})"
    raise NoDataError(f"device {device_id} has no readings captured in {asked}"
                      + (f"; its first is at {utc_iso(whole[0].captured_at)}" if whole else ""))


def _when(t: float | None) -> str:
    return "-" if t is None else utc_iso(t)


def export(db_path: Path | str, device_id: str, fmt: str, out: Path | str, *,
           start: float | None = None, end: float | None = None,
           profile: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write one export; returns its summary (module docstring)."""
    check_request(fmt, out, start, end)
    readings = load(db_path, device_id, start, end)
    truncated = len(readings) >= MAX_READINGS
    tl = build_timeline(device_id, readings)
    del readings  # the timeline holds what it placed; the rest can go
    if fmt in ("wfdb", "edf") and tl.length > MAX_SLOTS:
        raise BadRequestError(
            f"{device_id}'s readings span {tl.seconds(tl.length) / 3600:.1f} h, gaps included: more "
            f"than {fmt} should hold at {tl.fs} Hz ({MAX_SLOTS:,} samples); narrow it with "
            "--from/--to, or use --format fhir or csv (they do not write the gaps' slots)")
    if fmt == "wfdb":
        files = write_wfdb(tl, out)
    elif fmt == "edf":
        files = write_edf(tl, out)
    elif fmt == "fhir":
        files = write_fhir(tl, out, profile=profile)
    else:
        files = write_csv(tl, out)
    return summary(tl, fmt, files, start=start, end=end, truncated=truncated)


def summary(tl: Timeline, fmt: str, files: list[Path], *, start: float | None, end: float | None,
            truncated: bool) -> dict[str, Any]:
    return {
        "device_id": tl.device_id, "format": fmt, "from": start, "to": end,
        "first_sample": tl.start, "first_sample_utc": utc_iso(tl.start),
        "end": tl.end, "end_utc": utc_iso(tl.end), "duration_s": tl.seconds(tl.length),
        "sample_rate_hz": tl.fs, "gain_uv": tl.gain_uv,
        "readings": len(tl.placed), "samples": tl.samples,
        "gaps": [{"start": tl.time_of(g.index), "start_utc": utc_iso(tl.time_of(g.index)),
                  "duration_s": tl.seconds(g.samples), "samples": g.samples, "sample_index": g.index}
                 for g in tl.gaps],
        "gap_total_s": tl.seconds(sum(g.samples for g in tl.gaps)),
        "overlaps": [{"boot_epoch": o.boot_epoch, "seq": o.seq, "captured_at": o.captured_at,
                      "samples_dropped": o.dropped, "whole": o.whole} for o in tl.overlaps],
        "lead_off": [{"start": tl.time_of(s.index), "duration_s": tl.seconds(s.samples)}
                     for s in tl.lead_off],
        "truncated": truncated, "max_readings": MAX_READINGS,
        "files": [str(f) for f in files]}
