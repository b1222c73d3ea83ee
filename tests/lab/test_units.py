"""lab.units: durations and rates as people type them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.errors import ConfigError
from lab.units import format_duration, format_rate, parse_duration, parse_rate


@pytest.mark.parametrize(("text", "seconds"), [
    ("200ms", 0.2), ("5s", 5.0), ("2m", 120.0), ("72h", 259_200.0), ("1d", 86_400.0),
    ("1.5s", 1.5), (".5s", 0.5), ("1m30s", 90.0), ("1h30m", 5400.0), ("2s500ms", 2.5), (" 3s ", 3.0),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "200", "5 s", "-3s", "5x", "s", "ms", "1e3s", "5s5", "5sec",
                                  "nan s", "3s-1s"])
def test_bad_durations_name_the_value_and_the_units(text: str) -> None:
    with pytest.raises(ConfigError, match="bad duration") as exc:
        parse_duration(text)
    assert "\n" not in str(exc.value)


def test_zero_is_a_duration_only_where_allowed() -> None:
    with pytest.raises(ConfigError, match="more than 0"):
        parse_duration("0s")
    assert parse_duration("0ms", allow_zero=True) == 0.0


@pytest.mark.parametrize(("text", "bytes_per_s"), [
    ("64kbps", 8000.0), ("1mbps", 125_000.0), ("1Mbps", 125_000.0), ("8bps", 1.0), ("1gbps", 125e6),
    ("32KB/s", 32_000.0), ("32kB/s", 32_000.0), ("1MB/s", 1e6), ("100B/s", 100.0), ("1.5mbps", 187_500.0),
])
def test_rates_are_bytes_per_second(text: str, bytes_per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize("text", ["", "64", "64k", "64kb", "fast", "-1kbps", "0kbps", "4bps", "1 MB",
                                  "1xbps"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ConfigError, match="bad rate"):
        parse_rate(text)


@given(st.integers(min_value=1, max_value=10**7))
def test_a_formatted_duration_parses_back(ms: int) -> None:
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


@given(st.integers(min_value=1, max_value=10**9))
def test_a_formatted_rate_parses_back(bytes_per_s: int) -> None:
    assert parse_rate(format_rate(bytes_per_s)) == pytest.approx(bytes_per_s, rel=1e-5)
