"""The fleet's event history, `DIR/history/devices.jsonl`, for the lab's checker.

Format (docs/architecture.md, "History (for the checker)"): one compact JSON object per
line with short, fixed keys, in this order:

    {"t":...,"ev":"boot","dev":"hc-0001","boot":2,"next_seq":118}
    {"t":...,"ev":"generated","dev":"hc-0001","boot":2,"seq":118,"cap":1700000000.0}
    {"t":...,"ev":"published","dev":"hc-0001","boot":2,"seq":118,"qos":1,"backlog":false}
    {"t":...,"ev":"published","dev":"hc-0001","boot":2,"seq":97,"qos":1,"backlog":true,"resend":"gap"}
    {"t":...,"ev":"broker_acked","dev":"hc-0001","boot":2,"seq":118}
    {"t":...,"ev":"ingest_acked","dev":"hc-0001","boot":2,"seq":118}
    {"t":...,"ev":"evicted","dev":"hc-0001","boot":2,"seq":3,"reason":"outbox-full:drop-oldest"}
    {"t":...,"ev":"truth","dev":"hc-0001","kind":"rhythm","label":"af","start":1796045840.0,"end":1796047040.0,"episode":true,"hr_bpm":121.4}

`truth` is the generator's ground truth (devices/ecg_source.py): one line per rhythm or
artifact segment of a device's signal, written when the generator first produces samples of
it, just before the `generated` line of the reading that holds them. `kind` is "rhythm"
(label: sinus, brady, tachy, af, pvc, bigeminy, vt, pause, ...) or "artifact" (lead-off,
motion, emg, wander, mains); the baseline rhythm (and a continuous artifact) starts at the
device's first sample (profiles.json `since`) with "end":null and "episode":false; an
episode has its own end and "episode":true. "hr_bpm" (the rate the generator set) follows
when the segment has one. A restart writes the segments it meets again, with the same
start: readers deduplicate on (dev, kind, label, start).

A `published` line with "resend" is a copy sent again, with the reason (devices/resend.py);
without it, the reading's first copy in this boot.
`boot` is the boot epoch of the *reading* (a backlog row of an earlier boot keeps its own),
except in `boot` events, where it is the epoch that starts. Times are the injected clock's
simulated Unix seconds, rounded to whole microseconds like the wire's captured_at, so `cap`
equals the decoded reading's captured_at exactly.

Cost. Events are formatted with f-strings (device ids match [A-Za-z0-9_-], so they need no
escaping) into an in-memory list; `flush()` hands the whole batch to the OS with ONE
write() and returns. The fleet flushes before each outbox commit (so a `generated` line is
in the OS before the commit that makes its seq durable, and survives a kill -9 of the
process; no fsync: the machine is not expected to lose power) and after each publishing
pass (so a `published` line is in the OS before paho writes the bytes, which happens at
the next socket poll).

`NoHistory` has the same methods and does nothing (`--no-history`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

from devices.errors import HistoryError


def _us(t: float) -> float:
    """Round to whole microseconds exactly as the wire codec does (us / 1e6)."""
    return round(t * 1_000_000) / 1_000_000


class DeviceHistory(Protocol):
    """What a device records. `t` is simulated wall time (`clock.now()`)."""

    def boot(self, t: float, dev: str, boot: int, next_seq: int) -> None: ...

    def generated(self, t: float, dev: str, boot: int, seq: int, cap: float) -> None: ...

    def published(self, t: float, dev: str, boot: int, seq: int, qos: int,
                  backlog: bool, resend: str | None = None) -> None: ...

    def broker_acked(self, t: float, dev: str, boot: int, seq: int) -> None: ...

    def ingest_acked(self, t: float, dev: str, boot: int, seq: int) -> None: ...

    def evicted(self, t: float, dev: str, boot: int, seq: int, reason: str) -> None: ...

    def truth(self, t: float, dev: str, kind: str, label: str, start: float, end: float | None,
              episode: bool, hr_bpm: float | None = None) -> None: ...


class NoHistory:
    """Records nothing (`--no-history`)."""

    def boot(self, t: float, dev: str, boot: int, next_seq: int) -> None:
        pass

    def generated(self, t: float, dev: str, boot: int, seq: int, cap: float) -> None:
        pass

    def published(self, t: float, dev: str, boot: int, seq: int, qos: int,
                  backlog: bool, resend: str | None = None) -> None:
        pass

    def broker_acked(self, t: float, dev: str, boot: int, seq: int) -> None:
        pass

    def ingest_acked(self, t: float, dev: str, boot: int, seq: int) -> None:
        pass

    def evicted(self, t: float, dev: str, boot: int, seq: int, reason: str) -> None:
        pass

    def truth(self, t: float, dev: str, kind: str, label: str, start: float, end: float | None,
              episode: bool, hr_bpm: float | None = None) -> None:
        pass

    def flush(self) -> int:
        return 0

    def close(self) -> None:
        pass


class HistoryFile:
    """Appends device events to a JSON-lines file; buffered until `flush()`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._repair_torn_end()
        except OSError as exc:
            raise HistoryError(f"cannot open the history {self.path}: {exc}") from exc
        self._lines: list[str] = []
        self.written = 0  # lines handed to the OS, for logs and tests

    def _repair_torn_end(self) -> None:
        """A process killed mid-write may leave a last line without its newline; start the
        next line on a fresh one, so only the torn line is lost (readers skip it)."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with self.path.open("rb") as fh:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                os.write(self._fd, b"\n")

    @property
    def pending(self) -> int:
        """Lines recorded but not flushed yet."""
        return len(self._lines)

    def boot(self, t: float, dev: str, boot: int, next_seq: int) -> None:
        self._lines.append(f'{{"t":{_us(t)!r},"ev":"boot","dev":"{dev}","boot":{boot},'
                           f'"next_seq":{next_seq}}}\n')

    def generated(self, t: float, dev: str, boot: int, seq: int, cap: float) -> None:
        self._lines.append(f'{{"t":{_us(t)!r},"ev":"generated","dev":"{dev}","boot":{boot},'
                           f'"seq":{seq},"cap":{_us(cap)!r}}}\n')

    def published(self, t: float, dev: str, boot: int, seq: int, qos: int,
                  backlog: bool, resend: str | None = None) -> None:
        flag = "true" if backlog else "false"
        why = f',"resend":"{resend}"' if resend else ""
        self._lines.append(f'{{"t":{_us(t)!r},"ev":"published","dev":"{dev}","boot":{boot},'
                           f'"seq":{seq},"qos":{qos},"backlog":{flag}{why}}}\n')

    def broker_acked(self, t: float, dev: str, boot: int, seq: int) -> None:
        self._lines.append(f'{{"t":{_us(t)!r},"ev":"broker_acked","dev":"{dev}",'
                           f'"boot":{boot},"seq":{seq}}}\n')

    def ingest_acked(self, t: float, dev: str, boot: int, seq: int) -> None:
        self._lines.append(f'{{"t":{_us(t)!r},"ev":"ingest_acked","dev":"{dev}",'
                           f'"boot":{boot},"seq":{seq}}}\n')

    def evicted(self, t: float, dev: str, boot: int, seq: int, reason: str) -> None:
        self._lines.append(f'{{"t":{_us(t)!r},"ev":"evicted","dev":"{dev}","boot":{boot},'
                           f'"seq":{seq},"reason":{json.dumps(reason)}}}\n')

    def truth(self, t: float, dev: str, kind: str, label: str, start: float, end: float | None,
              episode: bool, hr_bpm: float | None = None) -> None:
        """One ground-truth segment (module docstring); labels are catalogue words."""
        stop = "null" if end is None else repr(_us(end))
        rate = "" if hr_bpm is None else f',"hr_bpm":{round(hr_bpm, 3)!r}'
        self._lines.append(f'{{"t":{_us(t)!r},"ev":"truth","dev":"{dev}","kind":{json.dumps(kind)},'
                           f'"label":{json.dumps(label)},"start":{_us(start)!r},"end":{stop},'
                           f'"episode":{"true" if episode else "false"}{rate}}}\n')

    def flush(self) -> int:
        """Hand every pending line to the OS in one write(). Returns the lines written."""
        if not self._lines:
            return 0
        data = "".join(self._lines).encode("ascii")
        n = len(self._lines)
        self._lines = []
        try:
            view = memoryview(data)
            while view:  # a regular file takes it all at once; loop for the rare short write
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            raise HistoryError(f"cannot append to the history {self.path}: {exc}") from exc
        self.written += n
        return n

    def close(self) -> None:
        """Flush and close. Idempotent."""
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = -1
