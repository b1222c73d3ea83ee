"""Lower a process's CPU priority so that it yields to the rest of the stack, on Linux with
autogroup scheduling too.

`os.nice` alone does not do it there: with `kernel.sched_autogroup_enabled = 1` (the default
of Debian's kernels) every session is its own scheduling group, the groups share the CPUs
equally whatever their processes' nice values, and each stack component runs in its own
session (lab/stack/procs.py, setsid). Measured: the analysis stage at nice 19 still took 0.7-0.9
of a core beside a saturated fleet (bench/scale.py). The group's own nice value
(/proc/self/autogroup, sched(7)) is what weighs against the other groups; `yield_cpu` sets
both."""

from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def yield_cpu(nice: int, autogroup: Path = AUTOGROUP) -> bool:
    """Add `nice` (1..19) to this process's nice value and set its autogroup's nice to the
    result; returns whether the autogroup took it (False: no autogroups here, or refused)."""
    value = os.nice(min(max(nice, 0), 19))
    try:
        autogroup.write_text(f"{value}\n")
    except OSError:
        return False
    return True
