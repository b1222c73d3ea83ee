"""The [[faults]] entries of a scenario file as Fault windows: each at the start and end it
gives, or `count` windows at seeded random moments (count, between, lasting)."""

from __future__ import annotations

import math
import random
from typing import Any

from lab.scenario.locator import Errors
from lab.scenario.model import Fault, Path_, ScenarioError
from lab.scenario.tables import FAULT, ValueShapeError, as_duration, table, where

Window = tuple[str, float, float]  # (id, start, end) in simulated seconds


def faults(err: Errors, raw: Any, duration: float, seed: int) -> list[Fault]:
    if not isinstance(raw, list):
        raise err.at(("faults",), "faults must be an array of tables ([[faults]])")
    out: list[Fault] = []
    for n, entry in enumerate(raw):
        out += _entry(err, n, entry, duration, seed)
    return out


def _entry(err: Errors, n: int, entry: Any, duration: float, seed: int) -> list[Fault]:
    """The windows of the n-th [[faults]] entry."""
    path: Path_ = ("faults", n)
    v = table(err, entry, path, FAULT, required=("kind", "target"))
    fid = v.pop("id", None) or f"{v['kind']}-{v['target']}"
    randomly: dict[str, Any] = {k: v.pop(k) for k in ("count", "between", "lasting") if k in v}
    windows: list[Window]
    if randomly:
        for k in ("start", "end"):
            if k in v:
                raise err.at((*path, k), f"{k} cannot go with count/between/lasting "
                                         f"(random moments); use one or the other")
        windows = random_windows(err, path, fid, randomly, duration, seed)
    else:
        for k in ("start", "end"):
            if k not in v:
                raise err.at(path, f"{where(path)} needs {k!r} (or count, between "
                                   f"and lasting for random moments)")
        windows = [(fid, v.pop("start"), v.pop("end"))]
    out = []
    for wid, start, end in windows:
        for k, at in (("start", start), ("end", end)):
            if at > duration:
                raise err.at((*path, k), f"fault {wid!r} {k}s at {at:g} s, after the run "
                                         f"ends ({duration:g} s)")
        try:
            out.append(Fault(id=wid, start=start, end=end, entry=n, **v))
        except ScenarioError as exc:
            key = exc.key
            if key and key[0] in ("start", "end") and randomly:
                key = ("between",)
            raise err.at(path + key, exc.message) from None
    return out


def random_windows(err: Errors, path: Path_, fid: str, r: dict[str, Any], duration: float,
                   seed: int) -> list[Window]:
    """`count` windows of `lasting` seconds at seeded random moments within `between`,
    at least `lasting` apart: the same seed always gives the same moments."""
    for k in ("count", "between", "lasting"):
        if k not in r:
            raise err.at(path, f"random moments need count, between and lasting; {k!r} is missing")
    count, lasting = r["count"], r["lasting"]
    if count < 1:
        raise err.at((*path, "count"), f"count must be at least 1, got {count}")
    if not lasting > 0:
        raise err.at((*path, "lasting"), f"lasting must be more than 0, got {lasting!r}")
    between = r["between"]
    try:
        if not (isinstance(between, list) and len(between) == 2):
            raise ValueShapeError(f"must be [earliest, latest], got {between!r}")
        lo, hi = (as_duration(x) for x in between)
    except ValueShapeError as exc:
        raise err.at((*path, "between"), f"between {exc}") from None
    if not 0 <= lo < hi <= duration:
        raise err.at((*path, "between"), f"between [{lo:g} s, {hi:g} s] must lie within the "
                                         f"run [0, {duration:g} s], earliest before latest")
    slack = (hi - lo) - (2 * count - 1) * lasting
    if slack < 0:
        raise err.at((*path, "count"), f"{count} faults of {lasting:g} s, at least "
                                       f"{lasting:g} s apart, do not fit in between")
    rng = random.Random(f"{seed}:{fid}")
    points = sorted(rng.uniform(0, slack) for _ in range(count))
    out = []
    for i, p in enumerate(points):
        start = math.floor((lo + p + 2 * i * lasting) * 1000) / 1000
        out.append((f"{fid}-{i + 1}", start, start + lasting))
    return out
