"""Scheduled episodes: a rhythm that takes over some patients' hearts for a while, at a time
on the scenario's timeline, so that an outage can be made to overlap it.

    [[episodes]]
    kind = "af-episode"          # a catalogue episode (devices.catalogue): af-episode, vt-run, pause, ...
    profiles = "af-cohort"       # the patients: a [[fleet.profiles]] name or a list of them,
    # devices = "0-9,20-29"      #   or device indices (a fleet scaled down keeps those it has)
    at = "12h"                   # on the timeline, like a fault's start
    duration = "20m"

    EpisodeSpec                     the validated entry
    episodes(err, raw, ...)         the [[episodes]] entries of a file, each error at its line
    check_rhythms(err, profiles)    each profile's rhythm is an entry of the catalogue
    episode_args(specs, fleet, t0)  the fleet's --episode specs, for a fleet (maybe scaled down)

Pure: no file, no process, no clock.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from devices.catalogue import Catalogue, load_catalogue
from devices.errors import ProfileError
from lab.scenario.locator import Errors
from lab.scenario.model import FleetSpec, Path_, Profile, ScenarioError, _is_num
from lab.scenario.tables import Spec, ValueShapeError, as_duration, as_str, table

_RANGES = re.compile(r"\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*")
_KIND = re.compile(r"[a-z][a-z0-9-]*")


def as_names(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise ValueShapeError(f"must be a profile name or a list of them, got {v!r}")


EPISODE: Spec = {"kind": as_str, "at": as_duration, "duration": as_duration,
                 "profiles": as_names, "devices": as_str}


@dataclass(frozen=True)
class EpisodeSpec:
    """One [[episodes]] entry: `kind` for `duration` simulated seconds from `at` (seconds since
    the run began), on the devices of `profiles` or the device indices `devices`."""

    kind: str
    at: float
    duration: float
    profiles: tuple[str, ...] = ()
    devices: str | None = None  # "0-9,20" (indices)

    def __post_init__(self) -> None:
        if not _KIND.fullmatch(self.kind):
            raise ScenarioError(f"kind must be a catalogue episode like \"af-episode\", got {self.kind!r}",
                                key="kind")
        if not (_is_num(self.at) and self.at >= 0):
            raise ScenarioError(f"at must be at or after the beginning of the run (0), got {self.at!r}",
                                key="at")
        if not (_is_num(self.duration) and self.duration > 0):
            raise ScenarioError(f"duration must be more than 0, got {self.duration!r}", key="duration")
        if bool(self.profiles) == (self.devices is not None):
            raise ScenarioError("an episode needs either profiles or devices (one of them)",
                                key="profiles" if self.profiles else ())
        if self.devices is not None and not _RANGES.fullmatch(self.devices):
            raise ScenarioError(f"devices must be indices like \"0-9,20\", got {self.devices!r}",
                                key="devices")

    def indices(self, fleet: FleetSpec) -> list[int]:
        """The device indices it applies to in `fleet` (profiles are consecutive groups)."""
        if self.devices is not None:
            out: set[int] = set()
            for part in self.devices.split(","):
                lo, _, hi = part.partition("-")
                out.update(range(int(lo), int(hi or lo) + 1))
            return sorted(i for i in out if i < fleet.devices)
        first, out_list = 0, list[int]()
        for p in fleet.profiles:
            if p.name in self.profiles:
                out_list += range(first, first + p.devices)
            first += p.devices
        return out_list


def check_rhythms(err: Errors, profiles: tuple[Profile, ...], catalogue: Catalogue | None = None) -> None:
    """Each [[fleet.profiles]] rhythm names a (non-episode) entry of the shipped catalogue."""
    for i, p in enumerate(profiles):
        if p.rhythm is not None:
            try:
                (catalogue or load_catalogue()).get(p.rhythm, episode=False)
            except ProfileError as exc:
                raise err.at(("fleet", "profiles", i, "rhythm"), f"rhythm: {exc}") from None


def episodes(err: Errors, raw: Any, duration: float, profiles: tuple[Profile, ...]) -> list[EpisodeSpec]:
    """The [[episodes]] entries; each must be an episode of the catalogue, start within the
    run and name profiles it has."""
    if not isinstance(raw, list):
        raise err.at(("episodes",), "episodes must be an array of tables ([[episodes]])")
    names = [p.name for p in profiles]
    catalogue = load_catalogue() if raw else None
    out = []
    for n, entry in enumerate(raw):
        path: Path_ = ("episodes", n)
        v = table(err, entry, path, EPISODE, required=("kind", "at", "duration"))
        try:
            spec = EpisodeSpec(**v)
        except ScenarioError as exc:
            raise err.at(path + exc.key, exc.message) from None
        try:
            if catalogue is not None:
                catalogue.get(spec.kind, episode=True)
        except ProfileError as exc:
            raise err.at((*path, "kind"), f"kind: {exc}") from None
        if spec.at >= duration:
            raise err.at((*path, "at"), f"episode {spec.kind!r} starts at {spec.at:g} s, at or after "
                                        f"the run ends ({duration:g} s)")
        for name in spec.profiles:
            if name not in names:
                raise err.at((*path, "profiles"), f"episode {spec.kind!r} names profile {name!r}, "
                             f"which [[fleet.profiles]] does not have{_did_you_mean(name, names)}")
        out.append(spec)
    return out


def _did_you_mean(name: str, options: list[str]) -> str:
    hint = difflib.get_close_matches(name, options, n=1)
    if hint:
        return f" (did you mean {hint[0]!r}?)"
    return f" (it has {', '.join(map(repr, options))})" if options else " (it has none)"


def ranges(indices: list[int]) -> list[tuple[int, int]]:
    """[0, 1, 2, 5] → [(0, 2), (5, 5)]."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def episode_args(specs: tuple[EpisodeSpec, ...], fleet: FleetSpec, origin: float) -> tuple[str, ...]:
    """The fleet's --episode specs (devices.catalogue.parse_episode's
    KIND@START+SECONDSs:devices=I-J, START in simulated Unix seconds), one per run of
    consecutive devices; an episode none of whose devices this fleet has is left out."""
    out = []
    for e in specs:
        for lo, hi in ranges(e.indices(fleet)):
            devices = f"{lo}-{hi}" if hi > lo else f"{lo}"
            out.append(f"{e.kind}@{origin + e.at:.3f}+{e.duration:.3f}s:devices={devices}")
    return tuple(out)
