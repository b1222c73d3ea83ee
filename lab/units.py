"""Durations and data rates as people type them: `200ms`, `5s`, `2m`, `1h30m`, `64kbps`, `32KB/s`.

    duration  one or more <number><unit> terms, unit ms | s | m | h | d   → seconds (float)
    rate      <number><prefix>bps  (bits per second, decimal prefixes k, m, g)  → bytes/s
              <number><prefix>B/s  (bytes per second, decimal prefixes k/K, M, G) → bytes/s

A unit is always required: a bare `200` could mean milliseconds or seconds. Every bad value
raises ConfigError with one line that says what was expected.
"""

from __future__ import annotations

import math
import re

from lab.errors import ConfigError

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_BITS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)bps", re.IGNORECASE)
_BYTES = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kKMG]?)B/s")
_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_duration(text: str, *, allow_zero: bool = False) -> float:
    """'200ms' → 0.2, '5s' → 5.0, '2m' → 120.0, '72h' → 259200.0, '1m30s' → 90.0."""
    s = text.strip()
    pos, total = 0, 0.0
    for m in _TERM.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ConfigError(f"bad duration {text!r}: use a number and a unit (ms, s, m, h, d), "
                          f"e.g. 200ms, 5s, 2m, 72h or 1m30s")
    if not math.isfinite(total) or total < 0 or (total == 0 and not allow_zero):
        raise ConfigError(f"bad duration {text!r}: it must be {'≥ 0' if allow_zero else 'more than 0'}")
    return total


def parse_rate(text: str) -> float:
    """A rate in bytes per second: '64kbps' → 8000.0, '1mbps' → 125000.0, '32KB/s' → 32000.0."""
    s = text.strip()
    if m := _BITS.fullmatch(s):
        value = float(m.group(1)) * _PREFIX[m.group(2).lower()] / 8
    elif m := _BYTES.fullmatch(s):
        value = float(m.group(1)) * _PREFIX[m.group(2).lower()]
    else:
        raise ConfigError(f"bad rate {text!r}: use bits (e.g. 64kbps, 1mbps) or bytes per second "
                          f"(e.g. 32KB/s, 1MB/s)")
    if not math.isfinite(value) or value < 1:
        raise ConfigError(f"bad rate {text!r}: it must be at least 1 byte per second")
    return value


def format_duration(seconds: float) -> str:
    """The short form used in the CLI's messages: 0.2 → '200ms', 5 → '5s', 90 → '1m30s'."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes:g}m" + (f"{rest:g}s" if rest else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours:g}h" + (f"{minutes:g}m" if minutes else "") + (f"{rest:g}s" if rest else "")


def format_rate(bytes_per_s: float) -> str:
    """Bytes/s as bits per second: 8000 → '64kbps'."""
    bits = bytes_per_s * 8
    for prefix, scale in (("g", 1e9), ("m", 1e6), ("k", 1e3)):
        if bits >= scale:
            return f"{bits / scale:g}{prefix}bps"
    return f"{bits:g}bps"
