"""The tables of a scenario file: their keys, how each value is converted, and the [fleet],
[broker] and expect values they become. Every error names the file and the line (Errors)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lab.checker.expect import Expectation, ExpectationError, parse_expectation
from lab.errors import ConfigError
from lab.scenario.locator import Errors
from lab.scenario.model import Broker, FleetSpec, Path_, Profile, ScenarioError, _is_int, _is_num
from lab.units import parse_duration, parse_rate


class ValueShapeError(Exception):
    """A value of the wrong shape; the caller adds where it was."""


def as_int(v: Any) -> int:
    if not _is_int(v):
        raise ValueShapeError(f"must be a whole number, got {v!r}")
    return int(v)


def as_num(v: Any) -> float:
    if not _is_num(v):
        raise ValueShapeError(f"must be a number, got {v!r}")
    return float(v)


def as_str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueShapeError(f"must be a string, got {v!r}")
    return v


def as_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueShapeError(f"must be true or false, got {v!r}")
    return v


def _hint(exc: ConfigError) -> str:
    """lab.units' advice without its own "bad duration '...'" lead."""
    return str(exc).split(": ", 1)[-1]


def as_duration(v: Any) -> float:
    if _is_num(v):
        return float(v)
    if isinstance(v, str):
        try:
            return parse_duration(v, allow_zero=True)
        except ConfigError as exc:
            raise ValueShapeError(f"= {v!r} is not a duration: {_hint(exc)}") from None
    raise ValueShapeError(f"must be a duration like \"90s\", \"500ms\" or \"72h\", or a number of "
                          f"seconds, got {v!r}")


def as_rate(v: Any) -> float:
    if _is_num(v):
        return float(v)
    if isinstance(v, str):
        try:
            return parse_rate(v)
        except ConfigError as exc:
            raise ValueShapeError(f"= {v!r} is not a rate: {_hint(exc)}") from None
    raise ValueShapeError(f"must be a rate like \"64kbps\" or \"32KB/s\", or bytes per second, got {v!r}")


def as_delivery(v: Any) -> str | list[str]:
    if isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)):
        return v
    raise ValueShapeError(f"must be a delivery mode or a list of them, got {v!r}")


def as_hr(v: Any) -> tuple[float, float]:
    if _is_num(v):
        return (float(v), float(v))
    if isinstance(v, list) and len(v) == 2 and all(_is_num(x) for x in v):
        return (float(v[0]), float(v[1]))
    raise ValueShapeError(f"must be a number or [low, high] in bpm, got {v!r}")


def as_is(v: Any) -> Any:
    return v


Conv = Callable[[Any], Any]
Spec = Mapping[str, Conv | None]  # key -> its conversion (None: the caller converts)

TOP: Spec = {"description": as_str, "duration": as_duration, "seed": as_int, "max_lag": as_duration,
             "fleet": None,
             "broker": None, "faults": None, "variants": None, "expect": None, "episodes": None,
             "attacks": None}
FLEET: Spec = {
    "devices": as_int, "delivery": as_delivery, "recording": as_str, "strip_length": as_duration,
    "strips_per_day": as_int, "strip_chunks": as_int, "chunk": as_duration, "sample_rate": as_int,
    "outbox_capacity": as_int, "outbox_policy": as_str, "ack_timeout": as_duration,
    "window": as_int, "keepalive": as_duration, "reconnect_backoff": as_str,
    "backlog_pace": as_num, "profiles": as_is, "procs": as_int,
}
PROFILE: Spec = {"name": as_str, "devices": as_int, "hr_bpm": as_hr, "strips_per_day": as_int,
                 "rhythm": as_str}
BROKER: Spec = {"max_queued": as_int, "persistence": as_bool, "ingest_keepalive": as_duration,
                "secure": as_bool, "ingest_workers": as_int, "store": as_str,
                "autosave_interval": as_int, "kind": as_str}
FAULT: Spec = {
    "id": as_str, "kind": as_str, "target": as_str, "start": as_duration, "end": as_duration,
    "latency": as_duration, "jitter": as_duration, "bandwidth": as_rate, "up": as_duration,
    "down": as_duration, "count": as_int, "between": as_is, "lasting": as_duration,
}
VARIANT: Spec = {"name": as_str, "fleet": None, "broker": None, "expect": None}


def where(path: Path_) -> str:
    """A human name for a table: [fleet], [[faults]] #2, [[variants]] #1 [fleet], ..."""
    out: list[str] = []
    for i, p in enumerate(path):
        if isinstance(p, int):
            continue
        entry = path[i + 1] if i + 1 < len(path) else None
        out.append(f"[[{p}]] #{entry + 1}" if isinstance(entry, int) else f"[{p}]")
    return " ".join(out) if out else "the top level"


def table(err: Errors, raw: Any, path: Path_, spec: Spec, required: Sequence[str] = ()) -> dict[str, Any]:
    """Check a table's keys and convert its values (None in spec: the caller converts)."""
    if not isinstance(raw, dict):
        raise err.at(path, f"{where(path)} must be a table, got {raw!r}")
    for k in raw:
        if k not in spec:
            hint = difflib.get_close_matches(str(k), list(spec), n=1)
            mean = f"did you mean {hint[0]!r}? " if hint else ""
            raise err.at((*path, k), f"unknown key {k!r} in {where(path)}; {mean}"
                                     f"known keys: {', '.join(spec)}")
    for k in required:
        if k not in raw:
            raise err.at(path, f"{where(path)} needs {k!r}")
    out: dict[str, Any] = {}
    for k, v in raw.items():
        conv = spec[k]
        try:
            out[k] = v if conv is None else conv(v)
        except ValueShapeError as exc:
            raise err.at((*path, k), f"{k} {exc}") from None
    return out


def expectations(err: Errors, raw: Any, path: Path_) -> tuple[Expectation, ...]:
    if not isinstance(raw, list):
        raise err.at(path, f"expect must be a list of strings like \"lost = 0\", got {raw!r}")
    out = []
    for i, text in enumerate(raw):
        try:
            out.append(parse_expectation(text))
        except ExpectationError as exc:
            raise err.at((*path, i), str(exc)) from None
    return tuple(out)


def fleet(err: Errors, base: dict[str, Any], override: dict[str, Any], override_path: Path_) -> FleetSpec:
    """A FleetSpec from the [fleet] table with a variant's overrides on top."""
    def origin(k: str) -> Path_:
        return override_path if k in override else ("fleet",)

    values = {**base, **override}
    profiles = []
    raw_profiles = values.pop("profiles", None) or []
    if not isinstance(raw_profiles, list):
        raise err.at((*origin("profiles"), "profiles"),
                     "profiles must be an array of tables ([[fleet.profiles]])")
    for i, raw in enumerate(raw_profiles):
        ppath = (*origin("profiles"), "profiles", i)
        conv = table(err, raw, ppath, PROFILE, required=("name", "devices"))
        try:
            profiles.append(Profile(**conv))
        except ScenarioError as exc:
            raise err.relocate(ppath, exc) from None
    try:
        return FleetSpec(**values, profiles=tuple(profiles))
    except ScenarioError as exc:
        raise err.relocate((), exc, origin) from None


def broker(err: Errors, values: dict[str, Any], override: Mapping[str, Any], override_path: Path_) -> Broker:
    try:
        return Broker(**values)
    except ScenarioError as exc:
        k = exc.key[0] if exc.key else ""
        raise err.relocate(override_path if k in override else ("broker",), exc) from None
