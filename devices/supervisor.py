"""`python -m devices --procs N`: one fleet in N processes (docs/architecture.md, "Device side").

The supervisor drives no device. It

    1. writes fleet/profiles.json for ALL devices (as a one-process fleet does), creates the
       outbox (so the file is in WAL mode before several processes open it) and opens the
       history once (so a torn last line is repaired before any child appends);
    2. removes stale fleet/devices-*.json and metrics-*.json, and starts N children
       `python -m devices <same args> --procs 1 --slice K/N`, K = 1..N, each driving a
       contiguous slice of the device ids (devices/fleet.py, "A slice"). They inherit its
       stdout and stderr (the component's log, fleet/fleet.log); a child's own lines start
       with `[K/N]`;
    3. about once a second merges the children's fleet/devices-K.json into fleet/devices.json,
       the schema of a one-process fleet with the supervisor's pid (a child's file counts
       only once it names that child's pid), so status and the lab's health check read one
       fleet;
    4. on SIGTERM/SIGINT forwards SIGTERM to every child, waits for them (`STOP_DEADLINE`
       real seconds, then SIGKILL), merges once more (every device offline) and exits 0, or
       1 when a child did not stop cleanly;
    5. when a child exits on its own: logs it, stops the others the same way and exits 1 (no
       silent half-fleet);
    6. SIGSTOP cannot be caught: a slice sees within a second that its supervisor is frozen
       and stops itself (devices/fleet.py, "A slice"); the supervisor, running again, sends
       SIGCONT to every stopped slice (and with the SIGTERM it forwards).

A child asks the kernel for SIGKILL when the supervisor dies (`die_with_parent`, prctl
PR_SET_PDEATHSIG), so a kill -9 of the fleet component is a crash of every device, as with
one process. The children share fleet/outbox.sqlite (WAL; each commits at the end of each
loop step that wrote, and waits up to the outbox's 10-s busy timeout for the write lock) and
append to history/devices.jsonl (each flush is one write() on an O_APPEND descriptor, so
lines of two processes never interleave).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from devices.fleet import FleetConfig, fleet_since, slice_bounds, write_fleet_profiles
from devices.history import HistoryFile
from devices.outbox import Outbox
from ecgcore.clock import Clock, make_clock
from ecgcore.files import read_json, write_json_atomic
from ecgcore.logline import stamp

MAX_PROCS = 16
STOP_DEADLINE = 20.0  # real seconds the children get to stop after SIGTERM
MERGE_PERIOD = 1.0  # real seconds between merges of devices-K.json
PARENT_ENV = "ECGPIPE_FLEET_SUPERVISOR"  # the supervisor's pid, for the child's check
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies; exit at once if that happened already
    (the supervisor named in $ECGPIPE_FLEET_SUPERVISOR is no longer the parent)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    expected = os.environ.get(PARENT_ENV)
    if expected is not None and os.getppid() != int(expected):
        os._exit(1)  # the supervisor died before prctl: nobody would stop this child


class Supervisor:
    """Starts, watches and stops the N slices of one fleet. See the module docstring."""

    def __init__(self, config: FleetConfig, argv: Sequence[str], procs: int,
                 out: TextIO | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.argv = list(argv)
        self.procs = procs
        self.clock = clock if clock is not None else make_clock(config.speed)
        self._out = out if out is not None else sys.stdout
        self._stop_requested = False
        self.children: list[subprocess.Popen[bytes]] = []

    def request_stop(self) -> None:
        """Ask the supervisor to stop its children (safe from a signal handler)."""
        self._stop_requested = True

    def log(self, message: str) -> None:
        print(f"{stamp(self.clock)} {message}", file=self._out, flush=True)

    def run(self) -> int:
        """Prepare the state dir, start the children, merge until asked to stop or a child
        dies, stop them all. Returns the exit code."""
        cfg = self.config
        self.log(f"fleet supervisor starting: {cfg.devices} devices in {self.procs} processes, "
                 f"pid {os.getpid()}")
        self.prepare()
        try:
            self.start_children()
            failed = self.watch()
        finally:
            clean = self.stop_children()
        self.merge()
        self.log(f"fleet supervisor stopped ({'a child failed' if failed or not clean else 'clean'})")
        return 1 if failed or not clean else 0

    def prepare(self) -> None:
        """profiles.json for every device, the outbox in WAL mode, the history's end repaired,
        no devices-K.json of an earlier run."""
        cfg = self.config
        cfg.fleet_dir.mkdir(parents=True, exist_ok=True)
        profiles = cfg.patient_profiles()
        write_fleet_profiles(cfg, self.clock, profiles, fleet_since(cfg, self.clock, profiles))
        Outbox(cfg.outbox_path, capacity=cfg.outbox_capacity, policy=cfg.outbox_policy).close()
        if cfg.history:
            HistoryFile(cfg.history_path).close()
        for stale in (*cfg.fleet_dir.glob("devices-*.json"), *cfg.fleet_dir.glob("metrics-*.json")):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        self.merge()

    def start_children(self) -> None:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        for k in range(1, self.procs + 1):
            if self._stop_requested:
                break
            lo, hi = slice_bounds(self.config.devices, (k, self.procs))
            argv = [sys.executable, "-m", "devices", *self.argv, "--procs", "1",
                    "--slice", f"{k}/{self.procs}"]
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env, close_fds=True)
            self.children.append(child)
            self.log(f"started slice {k}/{self.procs} (devices {lo}..{hi - 1}), pid {child.pid}")

    def watch(self) -> bool:
        """Merge about once a second until asked to stop (False) or a child exits (True)."""
        next_merge = time.monotonic()
        while not self._stop_requested:
            for k, child in enumerate(self.children, start=1):
                code = child.poll()
                if code is not None:
                    self.log(f"slice {k}/{self.procs} (pid {child.pid}) exited on its own with "
                             f"{_exit_words(code)}: stopping the other slices")
                    return True
            self._continue_stopped()
            now = time.monotonic()
            if now >= next_merge:
                self.merge()
                next_merge = now + MERGE_PERIOD
            time.sleep(0.1)
        return False

    def _continue_stopped(self) -> None:
        """SIGCONT every slice that froze itself while the supervisor was frozen (SIGSTOP)."""
        for child in self.children:
            if _stopped(child.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGCONT)

    def stop_children(self) -> bool:
        """SIGTERM every live child, wait for all until STOP_DEADLINE, SIGKILL the rest.
        Returns whether every child stopped cleanly: exit 0, or the forwarded SIGTERM before it
        installed its handler (it had not started its loop)."""
        clean = True
        for child in self.children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
                    child.send_signal(signal.SIGCONT)  # a frozen slice cannot act on TERM
        deadline = time.monotonic() + STOP_DEADLINE
        for k, child in enumerate(self.children, start=1):
            try:
                code = child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"slice {k}/{self.procs} (pid {child.pid}) did not stop within "
                         f"{STOP_DEADLINE:g} s: SIGKILL")
                child.kill()
                code = child.wait()
            if code not in (0, -signal.SIGTERM):
                clean = False
        return clean

    def merge(self) -> None:
        """fleet/devices.json from the children's devices-K.json (module docstring)."""
        devices: dict[str, Any] = {}
        updated = [round(self.clock.now(), 3)]
        for k, child in enumerate(self.children, start=1):
            doc = read_json(self.config.fleet_dir / f"devices-{k}.json")
            if not isinstance(doc, dict) or doc.get("pid") != child.pid:
                continue  # not written yet by this child (or an earlier run's)
            if isinstance(doc.get("devices"), dict):
                devices.update(doc["devices"])
            if isinstance(doc.get("updated_at"), int | float):
                updated.append(float(doc["updated_at"]))
        write_json_atomic(self.config.devices_json, {
            "pid": os.getpid(), "updated_at": max(updated), "delivery": str(self.config.delivery),
            "devices": dict(sorted(devices.items()))})


def _stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] in "Tt"


def _exit_words(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"


def run_supervisor(config: FleetConfig, argv: Sequence[str], procs: int) -> int:
    """`python -m devices --procs N` (N > 1): install the stop signals and run."""
    sup = Supervisor(config, argv, procs)

    def stop(_signum: int, _frame: object) -> None:
        sup.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return sup.run()
