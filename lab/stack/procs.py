"""Background processes with pidfiles: start, signal, stop, and tell their state.

Each component runs in its own session (setsid), logs to a file under the state dir and
is known by a JSON pidfile: {"pid", "start_ticks", "argv", "started_at", "last_signal"}, plus
"signalled_at" and "stopped_by" ("down" when `ecgpipe down` stopped it, "kill" for `ecgpipe kill`)
once it was signalled. start_ticks (field 22 of /proc/<pid>/stat) guards against a recycled pid.

States: running; stopped (frozen by SIGSTOP, and only that); exited (not running: it ended,
was stopped or killed, or never started). A pidfile that is there but damaged (not JSON, not
an object with a positive "pid", a directory in its place) names no process: the component
reads as exited and `damage()` says what is wrong with the file.
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

from ecgcore.files import JsonFileError, json_type, load_json, write_json_atomic
from ecgcore.waiting import wait_until
from lab.errors import ComponentError

RUNNING, STOPPED, EXITED = "running", "stopped", "exited"

# Children this process started: kept so they are reaped (no zombies, and no
# "subprocess is still running" ResourceWarning when a Popen object is collected).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP,
           "CONT": signal.SIGCONT, "INT": signal.SIGINT,
           "HUP": signal.SIGHUP}  # HUP: Mosquitto reads its password file and ACL again


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

    def _load(self) -> dict[str, Any] | None:
        """The pidfile's record; None when there is none; ComponentError when it is damaged."""
        try:
            doc = load_json(self.pidfile)
        except JsonFileError as exc:
            raise ComponentError(f"{self.name}'s pidfile {exc}") from exc
        if doc is None:
            return None
        pid = doc.get("pid") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ComponentError(f"{self.name}'s pidfile {self.pidfile} is damaged: it holds "
                                 f"{json_type(doc)}, not an object with a positive \"pid\"")
        return doc

    def info(self) -> dict[str, Any] | None:
        """The pidfile's record, or None when there is none or it is damaged (see damage())."""
        try:
            return self._load()
        except ComponentError:
            return None

    def damage(self) -> str | None:
        """What is wrong with a pidfile that is there but names no process; None if nothing."""
        try:
            self._load()
        except ComponentError as exc:
            return str(exc)
        return None

    def pid(self) -> int | None:
        info = self.info()
        return int(info["pid"]) if info else None

    def state(self) -> str:
        info = self.info()
        if not info:
            return EXITED
        child = _CHILDREN.get(int(info["pid"]))
        if child is not None and child.poll() is not None:
            del _CHILDREN[child.pid]  # reaped
        st = _stat(int(info["pid"]))
        if st is None or st[1] != info.get("start_ticks") or st[0] in ("Z", "X", "x"):
            return EXITED
        return STOPPED if st[0] in ("T", "t") else RUNNING

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        if self.state() != EXITED:
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

    def signal(self, name: str, *, by: str | None = None) -> int:
        """Send SIG`name` and record it in the pidfile, with who sent it (`by`: "down" or
        "kill"; None for a signal that does not end it, e.g. CONT)."""
        sig = SIGNALS.get(name.upper())
        if sig is None:
            raise ComponentError(f"unknown signal {name!r}; use one of KILL, TERM, STOP")
        state = self.state()
        if state == EXITED:
            damage = self.damage()
            raise ComponentError(f"{self.name} is not running" + (f" ({damage})" if damage else ""))
        pid = self.pid()
        if pid is None:
            raise ComponentError(f"{self.name} has no pidfile")
        os.kill(pid, sig)
        if sig == signal.SIGTERM and state == STOPPED:
            os.kill(pid, signal.SIGCONT)  # a frozen process cannot act on TERM
        info = self.info() or {}
        info["last_signal"] = name.upper()
        info["signalled_at"] = time.time()
        info["stopped_by"] = by
        write_json_atomic(self.pidfile, info)
        return pid

    def wait_state(self, wanted: str, deadline_s: float) -> bool:
        return wait_until(lambda: self.state() == wanted, deadline_s)

    def stop(self, deadline_s: float = 15.0, *, by: str = "down") -> None:
        """TERM, wait, then KILL: leaves the component exited, its pidfile saying who stopped it."""
        if self.state() == EXITED:
            return
        self.signal("TERM", by=by)
        if not self.wait_state(EXITED, deadline_s):
            self.signal("KILL", by=by)
            self.wait_state(EXITED, 5.0)


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
