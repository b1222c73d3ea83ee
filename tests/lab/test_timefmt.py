"""lab.timefmt: ISO 8601 UTC and spans in words."""

from __future__ import annotations

import math

import pytest

from lab.timefmt import ago, iso, when

T = 1796045840.7  # 2026-11-30T13:37:20.7Z


def test_iso_is_utc_with_a_z() -> None:
    assert iso(T) == "2026-11-30T13:37:20Z"
    assert iso(T, ms=True) == "2026-11-30T13:37:20.700Z"
    assert iso(None) == iso(math.nan) == iso(1e30) == "-"


@pytest.mark.parametrize(("seconds", "text"), [
    (0.4, "0.4 s"), (3, "3 s"), (45, "45 s"), (60, "1 min"), (185, "3 min 5 s"),
    (3600 * 3 + 12 * 60 + 7, "3 h 12 min"), (7200, "2 h"), (86400 * 2 + 3600 * 4, "2 d 4 h"),
])
def test_ago_in_words(seconds: float, text: str) -> None:
    assert ago(seconds) == text


def test_when_says_ago_or_ahead() -> None:
    assert when(T, T + 11520) == "2026-11-30T13:37:20Z (3 h 12 min ago)"
    assert when(T, T - 5) == "2026-11-30T13:37:20Z (in 5 s)"
    assert when(None, T) == "-"
