"""The ECG strip of the live page: one device's stored readings over the last `seconds` before
`end`, in millivolts with their sample rate (ingest.store_range.device_readings: the clinic
side's one reader of a device's samples).

Each stored reading becomes one segment; nothing is joined or filled: where no reading was
stored (an outage, the readings still on their way, a device that was off) the page draws
no trace, so a gap is shown as a gap. A reading that began before the window keeps only its
samples inside it. Work per call is bounded: at most `MAX_READINGS` readings (the newest).

Which seconds: at the stack's speed 1 the strip ends at the stack's now, so what has not been
stored yet is an empty stretch at its end that grows through an outage. A compressed run
(speed K > 1) passes 10 s of paper in 10/K real seconds, faster than a page refreshes, and a
backlog puts the newest stored reading minutes behind now: there the strip shows the newest
10 stored seconds (`newest=True`), and the page says how far behind now they are. A stack
that is down shows its newest stored seconds too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ingest.store_range import device_readings

ECG_SECONDS = 10.0  # the strip's length: 250 mm of ECG paper at 25 mm/s
LOOKBACK_S = 60.0  # a reading that began this long before the window may still reach into it
MAX_READINGS = 400


def ecg_window(db: Path, device: str, end: float, seconds: float = ECG_SECONDS, *,
               newest: bool = False) -> dict[str, Any]:
    """{"device", "start", "end", "follows", "segments": [{"t0", "rate", "seq", "mv": [...]}]}
    with `t0` the simulated capture time of the segment's first sample in the window, in
    capture order. The window is the `seconds` before `end`; with `newest`, the `seconds` up to
    the end of the newest reading captured in the LOOKBACK_S before `end` (`follows` says which)."""
    readings = device_readings(db, device, end - seconds - LOOKBACK_S, end, limit=10 * MAX_READINGS)
    if newest and readings:
        end = max(r.end_at for r in readings)
    start = end - seconds
    segments: list[dict[str, Any]] = []
    for r in readings[-MAX_READINGS:]:
        if r.end_at <= start or not r.sample_rate_hz:
            continue
        skip = max(0, int(np.ceil((start - r.captured_at) * r.sample_rate_hz)))
        mv = r.millivolts()[skip:]
        if mv.size == 0:
            continue
        segments.append({"t0": round(r.captured_at + skip / r.sample_rate_hz, 4), "rate": r.sample_rate_hz,
                         "seq": r.seq, "mv": np.round(mv, 3).tolist()})
    return {"device": device, "start": round(start, 3), "end": round(end, 3), "seconds": seconds,
            "follows": "newest" if newest else "now", "segments": segments}
