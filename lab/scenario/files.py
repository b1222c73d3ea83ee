"""Where shipped scenarios live, how a name resolves to a file, and the default speed."""

from __future__ import annotations

import os
from pathlib import Path

from lab.errors import ConfigError
from lab.scenario import Scenario

SCENARIO_DIR = Path(os.environ.get("ECGPIPE_SCENARIOS", Path(__file__).resolve().parents[2] / "scenarios"))
TARGET_REAL_S = 200.0  # the variants of a long scenario run in about this many real seconds in all
MIN_VARIANT_S = 45.0  # but each for at least this long
MAX_READINGS_PER_S = 1500.0  # what the stack sustains comfortably (docs/benchmarks.md)


def resolve_scenario(arg: str) -> Path:
    p = Path(arg)
    if p.is_file():
        return p
    named = SCENARIO_DIR / (arg if arg.endswith(".toml") else f"{arg}.toml")
    if named.is_file():
        return named
    raise ConfigError(f"no scenario file {arg!r} (and no {named.name} in {SCENARIO_DIR}); "
                      f"see `ecgpipe scenario list`")


def auto_speed(scn: Scenario) -> float:
    """Fast enough that all variants' timelines take about TARGET_REAL_S together (each at
    least MIN_VARIANT_S; starting and draining a stack add about 10-20 s a variant), slow
    enough that the fleet's readings per real second stay within what the stack sustains."""
    rate = max(v.fleet.readings_per_second for v in scn.variants)
    per_variant = max(MIN_VARIANT_S, TARGET_REAL_S / len(scn.variants))
    speed = min(scn.duration / per_variant, MAX_READINGS_PER_S / rate if rate > 0 else float("inf"))
    return max(1.0, round(speed, 1))
