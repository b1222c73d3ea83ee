"""CSV: one row per sample, a header row that states the units, a row per gap.

--out PATH is the file written (name it .csv). Columns:

    time_utc,seconds_since_start,ecg_mV,boot_epoch,seq,lead_off,gap_s

- a sample's row: its grid time (ISO 8601 UTC, microseconds, Z), seconds since the first sample,
  the value in millivolts (counts x gain, 6 decimals), the reading it came from (boot_epoch, seq),
  lead_off 1 when its reading was flagged lead-off (else 0), gap_s empty;
- a gap's row, in time order between the samples around it: time_utc and seconds_since_start
  of the first missing sample, ecg_mV, boot_epoch, seq and lead_off empty, gap_s = the gap's
  length in seconds. So a reader that plots ecg_mV against time sees a hole, never a line
  joining the two sides.

Readings cut by the overlap rule (segments.py) contribute only their placed samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from clinic.export.outpath import atomic, out_file
from clinic.export.segments import Placed, Span, Timeline

HEADER = "time_utc,seconds_since_start,ecg_mV,boot_epoch,seq,lead_off,gap_s"


def write_csv(tl: Timeline, path: Path | str) -> list[Path]:
    """Write the CSV file; returns the files written."""
    out = out_file(path, (".csv",))
    gaps = list(tl.gaps)
    with atomic(out) as tmp, tmp.open("w", encoding="ascii", newline="") as f:
        f.write(HEADER + "\n")
        g = 0
        for p in tl.placed:
            while g < len(gaps) and gaps[g].index < p.index:
                f.write(_gap_row(tl, gaps[g]))
                g += 1
            _write_reading(f, tl, p)
        for gap in gaps[g:]:
            f.write(_gap_row(tl, gap))
    return [out]


def slot_times(tl: Timeline, index: npt.NDArray[np.int64]) -> list[str]:
    """ISO 8601 UTC (microseconds, Z) of grid slots."""
    t0_us = round(tl.start * 1_000_000)
    us = t0_us + (index * 1_000_000 + tl.fs // 2) // tl.fs
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return [f"{t}Z" for t in text.tolist()]


def _gap_row(tl: Timeline, gap: Span) -> str:
    when = slot_times(tl, np.array([gap.index], dtype=np.int64))[0]
    return f"{when},{gap.index / tl.fs:.6f},,,,,{tl.seconds(gap.samples):.6f}\n"


def _write_reading(f: TextIO, tl: Timeline, p: Placed) -> None:
    index = np.arange(p.index, p.end, dtype=np.int64)
    times = slot_times(tl, index)
    secs = (index / tl.fs).tolist()
    mv = (p.counts().astype(np.float64) * (tl.gain_uv / 1000.0)).tolist()
    tail = f",{p.reading.boot_epoch},{p.reading.seq},{int(p.lead_off)},\n"
    f.write("".join(f"{t},{s:.6f},{v:.6f}{tail}" for t, s, v in zip(times, secs, mv, strict=True)))
