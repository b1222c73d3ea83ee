"""Where shipped scenarios live, how a name resolves to a file, and the default speed."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from lab.checker.fidelity import DRAIN_SHARE
from lab.errors import ConfigError
from lab.scenario import Scenario, Variant

SCENARIO_DIR = Path(os.environ.get("ECGPIPE_SCENARIOS", Path(__file__).resolve().parents[2] / "scenarios"))
TARGET_REAL_S = 200.0  # the variants of a long scenario run in about this many real seconds in all
MIN_VARIANT_S = 45.0  # but each for at least this long
MAX_READINGS_PER_S = 1500.0  # what the stack sustains comfortably (docs/benchmarks.md)
DRAIN_READINGS_PER_S = 1000.0  # what it delivers from a backlog: windows, acks, re-sends


def resolve_scenario(arg: str) -> Path:
    p = Path(arg)
    if p.is_file():
        return p
    named = SCENARIO_DIR / (arg if arg.endswith(".toml") else f"{arg}.toml")
    if named.is_file():
        return named
    raise ConfigError(f"no scenario file {arg!r} (and no {named.name} in {SCENARIO_DIR}); "
                      f"see `ecgpipe scenario list`")


def auto_speed(scn: Scenario, variants: Sequence[Variant] | None = None) -> float:
    """Fast enough that the variants' timelines take about TARGET_REAL_S together (each at
    least MIN_VARIANT_S; starting and draining a stack add about 10-20 s a variant), and no
    faster than this machine can follow, as far as the fleet's size tells (the variants as
    they will run, e.g. after --devices):

    - the fleet's readings per real second stay within MAX_READINGS_PER_S;
    - the backlog of each fault window (the fleet's rate × the window's length) drains within
      its fidelity allowance (lab/checker/fidelity.py: a quarter of the window) at
      DRAIN_READINGS_PER_S.

    The run's fidelity check still judges what really happened."""
    runs = list(variants) if variants is not None else list(scn.variants)
    rate = max(v.fleet.readings_per_second for v in runs)
    per_variant = max(MIN_VARIANT_S, TARGET_REAL_S / len(runs))
    speed = min(scn.duration / per_variant, MAX_READINGS_PER_S / rate if rate > 0 else math.inf,
                _drain_speed(scn, rate))
    return max(1.0, round(speed, 1))


def _drain_speed(scn: Scenario, rate: float) -> float:
    """The fastest speed at which every window's backlog drains within its allowance."""
    speed = math.inf
    for f in scn.faults:
        backlog = rate * (f.end - f.start)
        allowed = DRAIN_SHARE * (f.end - f.start)
        if backlog >= 1 and allowed > 0:
            speed = min(speed, DRAIN_READINGS_PER_S * allowed / backlog)
    return speed
