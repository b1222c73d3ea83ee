"""Scenario TOML files: parse and validate them into the model, with errors that name the file
and the line of the offending key (found by _Locator)."""

from __future__ import annotations

import json
import math
import random
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.checker import Expectation, ExpectationError, parse_expectation
from lab.errors import ConfigError
from lab.scenario.model import (
    DELIVERY_MODES,
    Broker,
    Fault,
    FleetSpec,
    Path_,
    Profile,
    Scenario,
    ScenarioError,
    Variant,
    _is_int,
    _is_num,
)
from lab.units import parse_duration, parse_rate

# --- locating keys in the TOML text ---------------------------------------------------------


class _Locator:
    """Line numbers of keys, table headers and array elements, by path.

    ("fleet", "devices") is `devices` in [fleet]; ("faults", 2, "end") is `end` in the third
    [[faults]]; ("expect", 1) is the second element of `expect = [...]`. Runs only on text that
    tomllib has accepted, so it can assume valid TOML; if it gets lost it stops, and lookups
    fall back to the nearest enclosing path it did record."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: dict[Path_, int] = {}
        self._starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        try:
            self._scan()
        except (IndexError, ValueError):
            pass

    def line(self, path: Path_) -> int | None:
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def _lineno(self, pos: int) -> int:
        lo, hi = 0, len(self._starts)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if self._starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def _note(self, path: Path_, pos: int) -> None:
        self.lines.setdefault(path, self._lineno(pos))

    def _skip(self, i: int, newlines: bool) -> int:
        t = self.text
        while i < len(t):
            c = t[i]
            if c in " \t" or (newlines and c in "\r\n"):
                i += 1
            elif c == "#":
                while i < len(t) and t[i] != "\n":
                    i += 1
            else:
                break
        return i

    def _string(self, i: int) -> tuple[str, int]:
        t = self.text
        for q in ('"""', "'''"):
            if t.startswith(q, i):
                j = i + 3
                while True:
                    if q == '"""' and t[j] == "\\":
                        j += 2
                        continue
                    if t.startswith(q, j):
                        while t.startswith(q[0], j + 3):  # up to two quotes may close the content
                            j += 1
                        return t[i + 3:j], j + 3
                    j += 1
        q = t[i]
        j = i + 1
        while t[j] != q:
            j += 2 if (q == '"' and t[j] == "\\") else 1
        raw = t[i + 1:j]
        if q == '"':
            try:
                raw = json.loads(f'"{raw}"')
            except ValueError:
                pass
        return raw, j + 1

    def _key(self, i: int) -> tuple[list[str], int]:
        t = self.text
        keys: list[str] = []
        while True:
            i = self._skip(i, newlines=False)
            if t[i] in "\"'":
                k, i = self._string(i)
            else:
                m = re.compile(r"[A-Za-z0-9_-]+").match(t, i)
                if m is None:
                    raise ValueError(f"no key at {i}")
                k, i = m.group(), m.end()
            keys.append(k)
            i = self._skip(i, newlines=False)
            if i < len(t) and t[i] == ".":
                i += 1
                continue
            return keys, i

    def _value(self, i: int, path: Path_) -> int:
        t = self.text
        c = t[i]
        if c in "\"'":
            return self._string(i)[1]
        if c == "[":
            i, n = i + 1, 0
            while True:
                i = self._skip(i, newlines=True)
                if t[i] == "]":
                    return i + 1
                self._note(path + (n,), i)
                i = self._skip(self._value(i, path + (n,)), newlines=True)
                n += 1
                if t[i] == ",":
                    i += 1
        if c == "{":
            i += 1
            while True:
                i = self._skip(i, newlines=False)
                if t[i] == "}":
                    return i + 1
                start = i
                keys, i = self._key(i)
                self._note(path + tuple(keys), start)
                i = self._skip(i + 1, newlines=False)  # past '='
                i = self._skip(self._value(i, path + tuple(keys)), newlines=False)
                if t[i] == ",":
                    i += 1
        m = re.compile(r"[^,\]}#\r\n]*").match(t, i)
        return m.end() if m else i + 1

    def _scan(self) -> None:
        t = self.text
        current: Path_ = ()
        arrays: dict[Path_, int] = {}

        def resolve(keys: list[str]) -> Path_:
            path: Path_ = ()
            for k in keys:
                path += (k,)
                if path in arrays:
                    path += (arrays[path] - 1,)
            return path

        i = self._skip(0, newlines=True)
        while i < len(t):
            start = i
            if t[i] == "[":
                double = t.startswith("[[", i)
                keys, i = self._key(i + (2 if double else 1))
                i += 2 if double else 1
                table = resolve(keys[:-1]) + (keys[-1],)
                self._note(table, start)
                if double:
                    arrays[table] = arrays.get(table, 0) + 1
                    table += (arrays[table] - 1,)
                    self._note(table, start)
                current = table
            else:
                keys, i = self._key(i)
                path = current + tuple(keys)
                self._note(path, start)
                i = self._value(self._skip(i + 1, newlines=False), path)
            i = self._skip(i, newlines=True)


# --- loading --------------------------------------------------------------------------------


class _Bad(Exception):
    """A value of the wrong shape; the loader adds where it was."""


def _as_int(v: Any) -> int:
    if not _is_int(v):
        raise _Bad(f"must be a whole number, got {v!r}")
    return int(v)


def _as_num(v: Any) -> float:
    if not _is_num(v):
        raise _Bad(f"must be a number, got {v!r}")
    return float(v)


def _as_str(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad(f"must be a string, got {v!r}")
    return v


def _as_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad(f"must be true or false, got {v!r}")
    return v


def _hint(exc: ConfigError) -> str:
    """lab.units' advice without its own "bad duration '...'" lead."""
    return str(exc).split(": ", 1)[-1]


def _as_duration(v: Any) -> float:
    if _is_num(v):
        return float(v)
    if isinstance(v, str):
        try:
            return parse_duration(v, allow_zero=True)
        except ConfigError as exc:
            raise _Bad(f"= {v!r} is not a duration: {_hint(exc)}") from None
    raise _Bad(f"must be a duration like \"90s\", \"500ms\" or \"72h\", or a number of seconds, got {v!r}")


def _as_rate(v: Any) -> float:
    if _is_num(v):
        return float(v)
    if isinstance(v, str):
        try:
            return parse_rate(v)
        except ConfigError as exc:
            raise _Bad(f"= {v!r} is not a rate: {_hint(exc)}") from None
    raise _Bad(f"must be a rate like \"64kbps\" or \"32KB/s\", or bytes per second, got {v!r}")


def _as_delivery(v: Any) -> str | list[str]:
    if isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)):
        return v
    raise _Bad(f"must be a delivery mode or a list of them, got {v!r}")


def _as_hr(v: Any) -> tuple[float, float]:
    if _is_num(v):
        return (float(v), float(v))
    if isinstance(v, list) and len(v) == 2 and all(_is_num(x) for x in v):
        return (float(v[0]), float(v[1]))
    raise _Bad(f"must be a number or [low, high] in bpm, got {v!r}")


Conv = Callable[[Any], Any]

TOP = {"description": _as_str, "duration": _as_duration, "seed": _as_int, "fleet": None,
       "broker": None, "faults": None, "variants": None, "expect": None}
FLEET: dict[str, Conv] = {
    "devices": _as_int, "delivery": _as_delivery, "recording": _as_str, "strip_length": _as_duration,
    "strips_per_day": _as_int, "strip_chunks": _as_int, "chunk": _as_duration, "sample_rate": _as_int,
    "outbox_capacity": _as_int, "outbox_policy": _as_str, "ack_timeout": _as_duration,
    "window": _as_int, "keepalive": _as_duration, "reconnect_backoff": _as_str,
    "backlog_pace": _as_num, "profiles": lambda v: v,
}
PROFILE: dict[str, Conv] = {"name": _as_str, "devices": _as_int, "hr_bpm": _as_hr,
                            "strips_per_day": _as_int}
BROKER: dict[str, Conv] = {"max_queued": _as_int, "persistence": _as_bool}
FAULT: dict[str, Conv] = {
    "id": _as_str, "kind": _as_str, "target": _as_str, "start": _as_duration, "end": _as_duration,
    "latency": _as_duration, "jitter": _as_duration, "bandwidth": _as_rate, "up": _as_duration,
    "down": _as_duration, "count": _as_int, "between": lambda v: v, "lasting": _as_duration,
}
VARIANT = {"name": _as_str, "fleet": None, "broker": None, "expect": None}


def _where(path: Path_) -> str:
    """A human name for a table: [fleet], [[faults]] #2, [[variants]] #1 [fleet], ..."""
    out: list[str] = []
    for i, p in enumerate(path):
        if isinstance(p, int):
            continue
        is_array = i + 1 < len(path) and isinstance(path[i + 1], int)
        out.append(f"[[{p}]] #{path[i + 1] + 1}" if is_array else f"[{p}]")  # type: ignore[operator]
    return " ".join(out) if out else "the top level"


class _Loader:
    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.loc = _Locator(text)

    def error(self, path: Path_, message: str) -> ScenarioError:
        return ScenarioError(message, file=self.file, line=self.loc.line(path) or 1, key=path)

    def relocate(self, prefix: Path_, exc: ScenarioError, origin: Callable[[str], Path_] | None = None) -> ScenarioError:
        key = exc.key
        if origin is not None and key and isinstance(key[0], str):
            prefix = origin(key[0])
        return self.error(prefix + key, exc.message)

    def table(self, raw: Any, path: Path_, spec: Mapping[str, Conv | None],
              required: Sequence[str] = ()) -> dict[str, Any]:
        """Check a table's keys and convert its values (None in spec: the caller converts)."""
        if not isinstance(raw, dict):
            raise self.error(path, f"{_where(path)} must be a table, got {raw!r}")
        for k in raw:
            if k not in spec:
                raise self.error(path + (k,), f"unknown key {k!r} in {_where(path)}; "
                                              f"known keys: {', '.join(spec)}")
        for k in required:
            if k not in raw:
                raise self.error(path, f"{_where(path)} needs {k!r}")
        out: dict[str, Any] = {}
        for k, v in raw.items():
            conv = spec[k]
            try:
                out[k] = v if conv is None else conv(v)
            except _Bad as exc:
                raise self.error(path + (k,), f"{k} {exc}") from None
        return out

    def expectations(self, raw: Any, path: Path_) -> tuple[Expectation, ...]:
        if not isinstance(raw, list):
            raise self.error(path, f"expect must be a list of strings like \"lost = 0\", got {raw!r}")
        out = []
        for i, text in enumerate(raw):
            try:
                out.append(parse_expectation(text))
            except ExpectationError as exc:
                raise self.error(path + (i,), str(exc)) from None
        return tuple(out)

    def fleet(self, base: dict[str, Any], override: dict[str, Any], override_path: Path_) -> FleetSpec:
        """A FleetSpec from the [fleet] table with a variant's overrides on top."""
        def origin(k: str) -> Path_:
            return override_path if k in override else ("fleet",)

        values = {**base, **override}
        profiles = []
        raw_profiles = values.pop("profiles", None) or []
        if not isinstance(raw_profiles, list):
            raise self.error(origin("profiles") + ("profiles",),
                             "profiles must be an array of tables ([[fleet.profiles]])")
        for i, raw in enumerate(raw_profiles):
            ppath = origin("profiles") + ("profiles", i)
            conv = self.table(raw, ppath, PROFILE, required=("name", "devices"))
            try:
                profiles.append(Profile(**conv))
            except ScenarioError as exc:
                raise self.relocate(ppath, exc) from None
        try:
            return FleetSpec(**values, profiles=tuple(profiles))
        except ScenarioError as exc:
            raise self.relocate((), exc, origin) from None

    def broker(self, values: dict[str, Any], override: Mapping[str, Any], override_path: Path_) -> Broker:
        try:
            return Broker(**values)
        except ScenarioError as exc:
            k = exc.key[0] if exc.key else ""
            raise self.relocate(override_path if k in override else ("broker",), exc) from None

    def faults(self, raw: Any, duration: float, seed: int) -> list[Fault]:
        if not isinstance(raw, list):
            raise self.error(("faults",), "faults must be an array of tables ([[faults]])")
        out: list[Fault] = []
        for n, entry in enumerate(raw):
            path: Path_ = ("faults", n)
            v = self.table(entry, path, FAULT, required=("kind", "target"))
            fid = v.pop("id", None) or f"{v['kind']}-{v['target']}"
            randomly = {k: v.pop(k) for k in ("count", "between", "lasting") if k in v}
            windows: list[tuple[str, float, float]]
            if randomly:
                for k in ("start", "end"):
                    if k in v:
                        raise self.error(path + (k,), f"{k} cannot go with count/between/lasting "
                                                      f"(random moments); use one or the other")
                windows = self.random_windows(path, fid, randomly, duration, seed)
            else:
                for k in ("start", "end"):
                    if k not in v:
                        raise self.error(path, f"{_where(path)} needs {k!r} (or count, between "
                                               f"and lasting for random moments)")
                windows = [(fid, v.pop("start"), v.pop("end"))]
            for wid, start, end in windows:
                for k, at in (("start", start), ("end", end)):
                    if at > duration:
                        raise self.error(path + (k,), f"fault {wid!r} {k}s at {at:g} s, after the run "
                                                      f"ends ({duration:g} s)")
                try:
                    out.append(Fault(id=wid, start=start, end=end, entry=n, **v))
                except ScenarioError as exc:
                    key = exc.key
                    if key and key[0] in ("start", "end") and randomly:
                        key = ("between",)
                    raise self.error(path + key, exc.message) from None
        return out

    def random_windows(self, path: Path_, fid: str, r: dict[str, Any], duration: float,
                       seed: int) -> list[tuple[str, float, float]]:
        """`count` windows of `lasting` seconds at seeded random moments within `between`,
        at least `lasting` apart: the same seed always gives the same moments."""
        for k in ("count", "between", "lasting"):
            if k not in r:
                raise self.error(path, f"random moments need count, between and lasting; {k!r} is missing")
        count, lasting = r["count"], r["lasting"]
        if count < 1:
            raise self.error(path + ("count",), f"count must be at least 1, got {count}")
        if not lasting > 0:
            raise self.error(path + ("lasting",), f"lasting must be more than 0, got {lasting!r}")
        between = r["between"]
        try:
            if not (isinstance(between, list) and len(between) == 2):
                raise _Bad(f"must be [earliest, latest], got {between!r}")
            lo, hi = (_as_duration(x) for x in between)
        except _Bad as exc:
            raise self.error(path + ("between",), f"between {exc}") from None
        if not 0 <= lo < hi <= duration:
            raise self.error(path + ("between",), f"between [{lo:g} s, {hi:g} s] must lie within the "
                                                  f"run [0, {duration:g} s], earliest before latest")
        slack = (hi - lo) - (2 * count - 1) * lasting
        if slack < 0:
            raise self.error(path + ("count",), f"{count} faults of {lasting:g} s, at least "
                                                f"{lasting:g} s apart, do not fit in between")
        rng = random.Random(f"{seed}:{fid}")
        points = sorted(rng.uniform(0, slack) for _ in range(count))
        out = []
        for k, p in enumerate(points):
            start = math.floor((lo + p + 2 * k * lasting) * 1000) / 1000
            out.append((f"{fid}-{k + 1}", start, start + lasting))
        return out

    def load(self, doc: dict[str, Any], scenario_name: str) -> Scenario:
        top = self.table(doc, (), TOP, required=("description", "duration", "fleet"))
        base = self.table(top["fleet"], ("fleet",), FLEET, required=("devices",))
        broker_base = self.table(top.get("broker", {}), ("broker",), BROKER)
        duration, seed = top["duration"], top.get("seed", 0)
        if not (_is_num(duration) and duration > 0):
            raise self.error(("duration",), f"duration must be more than 0, got {duration!r}")
        if seed < 0:
            raise self.error(("seed",), f"seed must be 0 or more, got {seed}")
        faults = self.faults(top.get("faults", []), duration, seed)
        fault_ids = {f.id for f in faults}

        # Variants: [[variants]], or a list of delivery modes, or the one run the file describes.
        specs: list[tuple[str, dict[str, Any], dict[str, Any], Path_, Any, Path_]] = []
        delivery = base.get("delivery")
        if "variants" in top:
            if isinstance(delivery, list):
                raise self.error(("fleet", "delivery"), "delivery is a list and [[variants]] are given; "
                                                        "name the delivery in each variant instead")
            if not isinstance(top["variants"], list) or not top["variants"]:
                raise self.error(("variants",), "variants must be a non-empty array of tables ([[variants]])")
            for n, raw in enumerate(top["variants"]):
                vpath: Path_ = ("variants", n)
                v = self.table(raw, vpath, VARIANT, required=("name",))
                fo = self.table(v.get("fleet", {}), vpath + ("fleet",), FLEET)
                if "profiles" in fo:
                    raise self.error(vpath + ("fleet", "profiles"), "a variant cannot change the profiles")
                bo = self.table(v.get("broker", {}), vpath + ("broker",), BROKER)
                specs.append((v["name"], fo, bo, vpath, v.get("expect"), vpath + ("expect",)))
        elif isinstance(delivery, list):
            if not delivery or len(set(map(str, delivery))) != len(delivery):
                raise self.error(("fleet", "delivery"), "a delivery list needs distinct modes")
            for i, mode in enumerate(delivery):
                if mode not in DELIVERY_MODES:
                    raise self.error(("fleet", "delivery", i), f"delivery must be one of "
                                     f"{', '.join(map(repr, DELIVERY_MODES))}, not {mode!r}")
                specs.append((mode, {"delivery": mode}, {}, ("fleet", "delivery", i), None, ()))
        else:
            specs.append(("default", {}, {}, ("fleet",), None, ()))

        expect = top.get("expect")
        if isinstance(expect, dict):
            names = [s[0] for s in specs]
            for k in expect:
                if k not in names:
                    raise self.error(("expect", k), f"expect names variant {k!r}, but the variants are "
                                                    f"{', '.join(map(repr, names))}")
        variants = []
        for name, fo, bo, vpath, own, own_path in specs:
            if own is not None:
                exps = self.expectations(own, own_path)
                epath = own_path
            elif isinstance(expect, dict):
                if name not in expect:
                    raise self.error(("expect",), f"expect gives no verdict for variant {name!r}")
                exps, epath = self.expectations(expect[name], ("expect", name)), ("expect", name)
            elif expect is None:
                where = vpath if "variants" in top else ()
                raise self.error(where, f"no expected verdict for variant {name!r}: add "
                                        f"expect = [\"lost = 0\", ...]")
            else:
                exps, epath = self.expectations(expect, ("expect",)), ("expect",)
            for i, e in enumerate(exps):
                if e.window_id is not None and e.window_id not in fault_ids:
                    raise self.error(epath + (i,), f"expectation {e.text!r} names fault window "
                                                   f"{e.window_id!r}, which is not in the timeline "
                                                   f"({', '.join(sorted(fault_ids)) or 'no faults'})")
            fleet_base = {k: v for k, v in base.items() if not (k == "delivery" and isinstance(v, list))}
            fleet = self.fleet(fleet_base, fo, vpath + ("fleet",) if "variants" in top else vpath)
            broker = self.broker({**broker_base, **bo}, bo, vpath + ("broker",))
            try:
                variants.append(Variant(name, fleet, broker, exps))
            except ScenarioError as exc:
                raise self.relocate(vpath if "variants" in top else (), exc) from None
        try:
            return Scenario(name=scenario_name, description=top["description"], duration=duration,
                            seed=seed, faults=tuple(faults), variants=tuple(variants), path=self.file)
        except ScenarioError as exc:
            raise self.relocate((), exc) from None


_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_scenario(text: str, file: str | Path = "<scenario>", name: str | None = None) -> Scenario:
    """Parse scenario TOML text; `file` is used in messages, `name` defaults to its stem."""
    path = Path(file)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_AT.search(str(exc))
        line = int(m.group(1)) if m else max(1, len(text.rstrip().splitlines()))
        message = _TOML_AT.sub("", str(exc)).strip()
        if m:
            message += f" (column {m.group(2)})"
        raise ScenarioError(f"not valid TOML: {message}", file=path, line=line) from None
    return _Loader(path, text).load(doc, name or path.stem)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file (see the module docstring)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read the scenario: {exc}", file=p) from None
    return parse_scenario(text, p)


def list_scenarios(directory: str | Path) -> list[tuple[str, str]]:
    """(name, description) of every *.toml in `directory`, sorted by name. A file that does not
    load is listed with "invalid: <the error>" as its description, so one bad file does not
    hide the others."""
    out = []
    for p in sorted(Path(directory).glob("*.toml")):
        try:
            out.append((p.stem, load_scenario(p).description))
        except ScenarioError as exc:
            out.append((p.stem, f"invalid: {exc}"))
    return out
