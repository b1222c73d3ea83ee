"""A patient's readings over a capture-time range: the range, the page, its gaps, its format.

The range is [from, to) over capture times (a reading is in it when its first sample is,
ingest.store_range). `from` and `to` are Unix seconds or ISO 8601 (clinic.export.times). Without
`to` the range is open-ended; without `from` it is the DEFAULT_SPAN_S before `to`, or before
the patient's newest stored reading when `to` is missing too (so a bare request shows the
latest five minutes). At most `limit` readings, the earliest of the range; `truncated` says
more were there.

Gaps: between two consecutive readings of the page, when the second starts later than the
first ends (by more than half a sample and 10 ms) or its seq does not follow; each with the
count of seqs between them that are not stored.

Formats, by the Accept header (`negotiate`): JSON (application/json, */*, or no header), or a
FHIR R4 Bundle (application/fhir+json) from clinic.export.fhir.patient_bundle; anything else 406.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

from clinic.api.models import Gap, ReadingOut, ReadingsPage, instant
from clinic.api.problems import ParamError
from clinic.errors import BadRequestError
from clinic.export.times import parse_time
from ingest.store_range import StoredReading, device_readings, last_captured
from lab.stack.statedir import StateDir

DEFAULT_SPAN_S = 300.0
LATEST_TIME = 32_503_680_000.0  # 3000-01-01T00:00:00Z: a later `from`/`to` is a mistake
FHIR_JSON = "application/fhir+json"
Format = Literal["json", "fhir"]
Samples = Literal["counts", "mv", "none"]


def parse_param(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = parse_time(text)
    except BadRequestError as exc:
        raise ParamError(name, f"query parameter {name!r}: {exc}") from exc
    if value > LATEST_TIME:
        raise ParamError(name, f"query parameter {name!r}: {text!r} is after the year 3000")
    return value


def resolve_range(sd: StateDir, device_id: str, start: float | None,
                  end: float | None) -> tuple[float | None, float | None]:
    if start is not None and end is not None and end <= start:
        raise ParamError("to", f"query parameter 'to' must be later than 'from' ({end} <= {start})")
    if start is None and end is not None:
        start = end - DEFAULT_SPAN_S
    elif start is None:
        last = last_captured(sd.ingest_db).get(device_id)
        start = None if last is None else last[0] - DEFAULT_SPAN_S + 1e-6
    return start, end


def _png_url(device_id: str, r: StoredReading) -> str:
    return f"/api/patients/{device_id}/readings/{r.boot_epoch}/{r.seq}.png"


def reading_out(r: StoredReading, samples: Samples) -> ReadingOut:
    cap = instant(r.captured_at)
    if cap is None:  # captured_at is a float: never
        raise ValueError("no capture time")
    return ReadingOut(
        boot_epoch=r.boot_epoch, seq=r.seq, captured_at=cap, end_at=round(r.end_at, 6),
        stored_at=r.stored_at, sample_rate_hz=r.sample_rate_hz, gain_uv=r.gain_uv,
        n_samples=int(r.samples.size), flags=r.flags,
        counts=[int(x) for x in r.samples] if samples == "counts" else None,
        millivolts=[round(float(x), 4) for x in r.millivolts()] if samples == "mv" else None,
        png=_png_url(r.device_id, r))


def gaps(readings: Sequence[StoredReading]) -> list[Gap]:
    out: list[Gap] = []
    for a, b in pairwise(readings):
        tol = (0.5 / a.sample_rate_hz if a.sample_rate_hz else 0.0) + 0.01
        late = b.captured_at - a.end_at
        if late > tol or b.seq != a.seq + 1:
            start, end = instant(a.end_at), instant(b.captured_at)
            if start is None or end is None:
                continue
            out.append(Gap(after_seq=a.seq, before_seq=b.seq, start=start, end=end,
                           seconds=round(max(0.0, late), 3), missing_readings=max(0, b.seq - a.seq - 1)))
    return out


def fetch(sd: StateDir, device_id: str, start: float | None, end: float | None,
          limit: int) -> tuple[list[StoredReading], bool]:
    """The page's readings, and whether the range holds more than `limit`."""
    got = device_readings(sd.ingest_db, device_id, start, end, limit=limit + 1)
    return got[:limit], len(got) > limit


def page(device_id: str, start: float | None, end: float | None, readings: list[StoredReading],
         truncated: bool, samples: Samples) -> ReadingsPage:
    return ReadingsPage(patient=device_id, start=instant(start), end=instant(end), count=len(readings),
                        truncated=truncated, readings=[reading_out(r, samples) for r in readings],
                        gaps=gaps(readings))


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    out = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        q = 1.0
        for f in fields[1:]:
            key, _, value = f.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if fields[0]:
            out.append((fields[0].lower(), q))
    return sorted(out, key=lambda m: -m[1])


def negotiate(accept: str | None) -> Format | None:
    """json, fhir, or None (nothing the client accepts: 406)."""
    if not accept or not accept.strip():
        return "json"
    for media, q in _media_ranges(accept):
        if q <= 0:
            continue
        if media in (FHIR_JSON, "application/json+fhir"):
            return "fhir"
        if media in ("application/json", "application/*", "*/*"):
            return "json"
    return None
