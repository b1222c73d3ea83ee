"""Times as the exports read and write them: ISO 8601 UTC or Unix seconds in, ISO 8601 UTC out."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from clinic.errors import BadRequestError


def parse_time(text: str) -> float:
    """Unix seconds from `text`: a number of Unix seconds ("1796045935.5"), or ISO 8601
    ("2026-12-01T15:43:48Z", "2026-12-01 15:43", "2026-12-01"; UTC when it names no zone).
    BadRequestError in one line otherwise."""
    value = _parse(text)
    try:
        utc_iso(value)
    except (OverflowError, OSError, ValueError):
        value = -1.0
    if value < 0:
        raise BadRequestError(f"{text!r} is not a time: it is before 1970 or after 9999")
    return value


def _parse(text: str) -> float:
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise BadRequestError(f"{text!r} is not a time (Unix seconds are a finite number)")
        return value
    try:
        dt = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise BadRequestError(f"{text!r} is not a time: use ISO 8601 (2026-12-01T15:43:48Z; UTC"
                              " when no zone is given) or Unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def utc_iso(t: float) -> str:
    """ISO 8601 UTC with microseconds and a Z: '2026-12-01T15:43:48.004000Z'."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_datetime(t: float) -> datetime:
    """A naive datetime of UTC wall-clock time (what WFDB and EDF headers hold)."""
    return datetime.fromtimestamp(t, UTC).replace(tzinfo=None)
