"""`ecgpipe logs [COMPONENT] [-f] [-n N]`: every component's log in one stream ordered by time.

Each output line is `2026-11-30T13:37:21.703Z ingest         message`: ISO 8601 UTC with
milliseconds, the component padded, the message without its own timestamp. The logs carry five
timestamp styles (parse_line reads each into Unix seconds):

    --- 2026-11-30T13:37:20 start: argv         lab.stack.procs, naive local time (time.mktime)
    1796045840: message                         Mosquitto's stderr (broker.log)
    2026-11-30T13:37:20: message                Mosquitto's log_dest (mosquitto.log), naive local
    ingest 1796045840.685 message               ingest before its logs became ISO (old state dirs)
    2026-11-30T13:37:21.703Z message            ingest and the fleet (`+00:00` in old state dirs)

A line without a timestamp (the proxies', the watcher's, a traceback's) takes the time of the line
before it in the same file; lines at a file's start take the file's first timestamp (its mtime if
it has none). A whole-second stamp inside the second of the line before it takes that line's time
(it is as true, and keeps the file in order). The files are merged lazily (heapq.merge): memory
holds one line per file, plus the last N lines for `-n N`.

Following (`-f`) polls every file for appended complete lines; a file that shrank or was replaced
(another inode) is read again from its start, a file that appears later is picked up. A file that
cannot be read (a directory in its place, no permission) is reported once on the stream and skipped.
"""

from __future__ import annotations

import heapq
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, NamedTuple, TextIO

from lab.errors import ConfigError, StateDirError
from lab.stack.statedir import COMPONENTS, StateDir, worker_of
from lab.timefmt import iso

WIDTH = 14  # the component column: the longest name (proxy-devices) and a space
ALIASES = {"fleet": ("devices",), "proxy": ("proxy-ingest", "proxy-devices"),
           "proxies": ("proxy-ingest", "proxy-devices")}
MAX_PENDING = 1000  # untimed lines held while waiting for a file's first timestamp

_STAMP = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?"
_START = re.compile(rf"^--- ({_STAMP}) (start: .*)$")
_ISO = re.compile(rf"^({_STAMP}):?(?: (.*))?$")
_EPOCH = re.compile(r"^(\d{9,11}(?:\.\d+)?): (.*)$")
_INGEST = re.compile(r"^ingest (\d{1,12}(?:\.\d+)?) (.*)$")


class Entry(NamedTuple):
    t: float
    component: str
    text: str


def parse_stamp(stamp: str) -> float | None:
    """An ISO 8601 time as Unix seconds: with a zone as given, naive as local time."""
    head, dot, frac = stamp.partition(".")
    if dot:  # datetime reads at most six fractional digits
        digits = re.match(r"\d*", frac)
        n = digits.end() if digits else 0
        stamp = f"{head}.{frac[:min(n, 6)]}{frac[n:]}"
    try:
        dt = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if dt.tzinfo is not None:
        return dt.timestamp()
    return time.mktime(dt.timetuple()) + dt.microsecond / 1e6


def parse_line(line: str) -> tuple[float, str] | None:
    """(Unix seconds, the message without its timestamp) of a log line, or None if it has none."""
    for pattern, prefix in ((_START, "--- "), (_ISO, "")):
        m = pattern.match(line)
        if m:
            t = parse_stamp(m.group(1))
            return None if t is None else (t, prefix + (m.group(2) or ""))
    for pattern in (_EPOCH, _INGEST):
        m = pattern.match(line)
        if m:
            return float(m.group(1)), m.group(2)
    return None


def format_entry(e: Entry) -> str:
    return f"{iso(e.t, ms=True)} {e.component:<{WIDTH}} {e.text}\n"


class LogSource:
    """One log file, read from where the last read stopped."""

    def __init__(self, component: str, path: Path) -> None:
        self.component = component
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.last_t: float | None = None
        self.reported = False

    def read(self, *, hold_partial: bool) -> Iterator[Entry]:
        """The entries appended since the last read. hold_partial: leave a last line without
        its newline for the next read (it is still being written)."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            yield from self._report(exc)
            return
        with f:
            try:
                st = os.fstat(f.fileno())
                if st.st_ino != self.inode or st.st_size < self.offset:  # replaced or truncated
                    self.inode, self.offset = st.st_ino, 0
                f.seek(self.offset)
                yield from self._entries(f, st.st_mtime, hold_partial=hold_partial)
            except OSError as exc:  # e.g. IsADirectoryError on the first read
                yield from self._report(exc)

    def _report(self, exc: OSError) -> Iterator[Entry]:
        if not self.reported:
            self.reported = True
            reason = exc.strerror or str(exc)
            yield Entry(time.time(), self.component, f"ecgpipe: cannot read {self.path}: {reason}")

    def _entries(self, f: BinaryIO, mtime: float, *, hold_partial: bool) -> Iterator[Entry]:
        pending: list[str] = []  # untimed lines before the file's first timestamp
        for raw in f:
            if hold_partial and not raw.endswith(b"\n"):
                break
            self.offset += len(raw)
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not text.strip():
                continue
            parsed = parse_line(text)
            if parsed is None and self.last_t is None:
                pending.append(text)
                if len(pending) >= MAX_PENDING:
                    self.last_t = mtime
                    yield from self._flush(pending, mtime)
                continue
            if parsed is None:
                yield Entry(self.last_t or mtime, self.component, text)
                continue
            at = self._monotone(parsed[0])
            yield from self._flush(pending, at)
            self.last_t = at
            yield Entry(at, self.component, parsed[1])
        if pending:
            self.last_t = mtime
            yield from self._flush(pending, mtime)

    def _monotone(self, t: float) -> float:
        """A whole-second stamp (`--- ... start:`, Mosquitto's) means some time in [t, t + 1): when
        the line before it is already in that second, it takes that line's time, so the file stays
        in order (a process restarted within the second its last line was written)."""
        last = self.last_t
        return last if last is not None and t.is_integer() and t <= last < t + 1 else t

    def _flush(self, pending: list[str], t: float) -> Iterator[Entry]:
        yield from (Entry(t, self.component, text) for text in pending)
        pending.clear()


def select_components(component: str | None, every: tuple[str, ...] = COMPONENTS) -> tuple[str, ...]:
    """The components `logs COMPONENT` means, of `every` (the state dir's: ingest's workers in
    ingest's place when it has several; `ingest` then means all of them)."""
    if component is None:
        return every
    if component in every:
        return (component,)
    if component == "ingest":
        return tuple(n for n in every if n.startswith("ingest-")) or (component,)
    if worker_of(component):
        raise ConfigError(f"this stack has no {component}; its components: {', '.join(every)}")
    if component in ALIASES:
        return ALIASES[component]
    names = ", ".join((*COMPONENTS, *ALIASES))
    raise ConfigError(f"unknown component {component!r}; use one of {names}")


def log_sources(sd: StateDir, component: str | None) -> list[LogSource]:
    """The log files of the chosen components (the broker has two: its stderr and Mosquitto's
    own log_dest); StateDirError when the state dir holds no stack."""
    if not sd.root.is_dir():
        what = "is not a directory" if sd.root.exists() else "does not exist"
        raise StateDirError(f"state dir {sd.root} {what}: run `ecgpipe up` first (or pass --state-dir)")
    names = select_components(component, sd.component_names())
    sources = []
    for name in names:
        sources.append(LogSource(name, sd.component(name).logfile))
        if name == "broker":
            sources.append(LogSource(name, sd.broker_dir / "mosquitto.log"))
    every = [sd.component(name).logfile for name in sd.component_names()]
    if not sd.exists() and not any(p.exists() for p in every):
        raise StateDirError(f"no stack in {sd.root}: run `ecgpipe up` first (or pass --state-dir)")
    return sources


def merged(sources: Iterable[LogSource], *, hold_partial: bool = False) -> Iterator[Entry]:
    """Every source's entries from where it stopped, in time order (stable for equal times)."""
    return heapq.merge(*(s.read(hold_partial=hold_partial) for s in sources), key=lambda e: e.t)


def run_logs(sd: StateDir, component: str | None, *, follow: bool, lines: int | None, out: TextIO,
             stop: Callable[[], bool] = lambda: False, poll_s: float = 0.2) -> int:
    """Print the merged logs (the last `lines` of them if given), then with `follow` keep printing
    what is appended until stop() returns True or Ctrl-C. Returns the exit code (0)."""
    if lines is not None and lines < 0:
        raise ConfigError(f"-n must be 0 or more, got {lines}")
    sources = log_sources(sd, component)
    stream = merged(sources, hold_partial=follow)
    shown: Iterable[Entry] = stream if lines is None else deque(stream, maxlen=lines)
    out.writelines(format_entry(e) for e in shown)
    out.flush()
    if follow:
        follow_sources(sources, out, stop=stop, poll_s=poll_s)
    return 0


def follow_sources(sources: list[LogSource], out: TextIO, *, stop: Callable[[], bool], poll_s: float,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll the sources for appended lines until stop() or Ctrl-C; each poll's lines in time order."""
    try:
        while not stop():
            batch = sorted(merged(sources, hold_partial=True), key=lambda e: e.t)
            out.writelines(format_entry(e) for e in batch)
            if batch:
                out.flush()
            else:
                sleep(poll_s)
    except KeyboardInterrupt:
        pass
