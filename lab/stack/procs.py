"""Background processes with pidfiles: start, signal, stop, and tell their state.

Each component runs in its own session (setsid), logs to a file under the state dir and
is known by a JSON pidfile: {"pid", "start_ticks", "argv", "started_at", "last_signal"}.
start_ticks (field 22 of /proc/<pid>/stat) guards against a recycled pid.
States: running; stopped (frozen by SIGSTOP); dead (exited, killed, or never started).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcore.files import read_json, write_json_atomic
from ecgcore.waiting import wait_until
from lab.errors import ComponentError

RUNNING, STOPPED, DEAD = "running", "stopped", "dead"

# Children this process started: kept so they are reaped (no zombies, and no
# "subprocess is still running" ResourceWarning when a Popen object is collected).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP,
           "CONT": signal.SIGCONT, "INT": signal.SIGINT}


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start ticks) of a live pid, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


@dataclass(frozen=True)
class Component:
    name: str
    directory: Path

    @property
    def pidfile(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.directory / f"{self.name}.log"

    def info(self) -> dict[str, Any] | None:
        info = read_json(self.pidfile)
        return info if isinstance(info, dict) else None

    def pid(self) -> int | None:
        info = self.info()
        return int(info["pid"]) if info else None

    def state(self) -> str:
        info = self.info()
        if not info:
            return DEAD
        child = _CHILDREN.get(int(info["pid"]))
        if child is not None and child.poll() is not None:
            del _CHILDREN[child.pid]  # reaped
        st = _stat(int(info["pid"]))
        if st is None or st[1] != info.get("start_ticks") or st[0] in ("Z", "X", "x"):
            return DEAD
        return STOPPED if st[0] in ("T", "t") else RUNNING

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        if self.state() != DEAD:
            raise ComponentError(f"{self.name} is already {self.state()} (pid {self.pid()})")
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env, close_fds=True)
        _CHILDREN[proc.pid] = proc
        st = _stat(proc.pid)
        write_json_atomic(self.pidfile, {"pid": proc.pid, "start_ticks": st[1] if st else None,
                                         "argv": argv, "started_at": time.time(), "last_signal": None})
        return proc.pid

    def signal(self, name: str) -> int:
        sig = SIGNALS.get(name.upper())
        if sig is None:
            raise ComponentError(f"unknown signal {name!r}; use one of KILL, TERM, STOP")
        state = self.state()
        if state == DEAD:
            raise ComponentError(f"{self.name} is not running")
        pid = self.pid()
        if pid is None:
            raise ComponentError(f"{self.name} has no pidfile")
        os.kill(pid, sig)
        if sig == signal.SIGTERM and state == STOPPED:
            os.kill(pid, signal.SIGCONT)  # a frozen process cannot act on TERM
        info = self.info() or {}
        info["last_signal"] = name.upper()
        info["signalled_at"] = time.time()
        write_json_atomic(self.pidfile, info)
        return pid

    def wait_state(self, wanted: str, deadline_s: float) -> bool:
        return wait_until(lambda: self.state() == wanted, deadline_s)

    def stop(self, deadline_s: float = 15.0) -> None:
        """TERM, wait, then KILL: leaves the component dead."""
        if self.state() == DEAD:
            return
        self.signal("TERM")
        if not self.wait_state(DEAD, deadline_s):
            self.signal("KILL")
            self.wait_state(DEAD, 5.0)


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
