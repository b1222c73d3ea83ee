"""ecgcore.priority.yield_cpu: a process in its own session (as every stack component is) gets
the nice value and its autogroup's nice too, where the kernel has autogroups."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = ("import os, sys; from ecgcore.priority import yield_cpu; took = yield_cpu(19); "
         "print(took, os.getpriority(os.PRIO_PROCESS, 0)); sys.stdout.flush(); sys.stdin.read()")


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="no autogroup scheduling here")
def test_a_component_in_its_own_session_sets_its_autogroups_nice() -> None:
    with subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, start_new_session=True, cwd=Path(__file__).resolve().parents[1]) as proc:
        try:
            assert proc.stdout is not None
            took, nice = proc.stdout.readline().split()  # blocks until the child has set both
            group = Path(f"/proc/{proc.pid}/autogroup").read_text()
        finally:
            proc.kill()
    assert took == "True" and nice == "19" and group.rstrip().endswith("nice 19"), (took, nice, group)
    # Its own group. A process still in the boot-time default group (one whose session was never
    # renewed since boot, as under some CI runners) reads an empty /proc/self/autogroup (the
    # kernel prints nothing for the root task group); the child, with its own session, differs.
    ours = Path("/proc/self/autogroup").read_text().split()
    assert group.split()[0] != (ours[0] if ours else "(the root task group)")


def test_without_autogroups_it_still_nices() -> None:
    code = ("import os; from pathlib import Path; from ecgcore.priority import yield_cpu; "
            "print(yield_cpu(5, Path('/nonexistent/autogroup')), os.getpriority(os.PRIO_PROCESS, 0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    assert out[0] == "False" and int(out[1]) >= 5
