"""Times as the CLI's text output shows them: ISO 8601 UTC and how long ago. Pure.

    iso(1796045840.7)             → '2026-11-30T13:37:20Z'
    ago(7920)                     → '2 h 12 min'
    when(t, now)                  → '2026-11-30T13:37:20Z (2 h 12 min ago)'

Only text output uses these; `--json` keeps Unix seconds (users' scripts compute with them).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def iso(t: float | None, *, ms: bool = False) -> str:
    """Unix seconds as ISO 8601 UTC with a Z ('-' for None or a value that is not a time)."""
    if t is None or not math.isfinite(t):
        return "-"
    try:
        dt = datetime.fromtimestamp(t, UTC)
    except (OverflowError, OSError, ValueError):
        return "-"
    text = dt.isoformat(timespec="milliseconds" if ms else "seconds")
    return text.replace("+00:00", "Z")


def ago(seconds: float) -> str:
    """A span in words, two units at most: '0.4 s', '45 s', '3 min 5 s', '3 h 12 min', '2 d 4 h'."""
    s = abs(seconds)
    if s < 10:
        return f"{s:.1f} s".replace(".0 s", " s")
    s = round(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, rest = divmod(s, 60)
        return f"{m} min" + (f" {rest} s" if rest else "")
    if s < 86400:
        h, rest = divmod(s, 3600)
        return f"{h} h" + (f" {rest // 60} min" if rest // 60 else "")
    d, rest = divmod(s, 86400)
    return f"{d} d" + (f" {rest // 3600} h" if rest // 3600 else "")


def when(t: float | None, now: float) -> str:
    """'2026-11-30T13:37:20Z (3 h 12 min ago)', or 'in 5 s' for a time ahead of now."""
    if t is None or not math.isfinite(t):
        return "-"
    delta = now - t
    rel = f"{ago(delta)} ago" if delta >= 0 else f"in {ago(delta)}"
    return f"{iso(t)} ({rel})"
