"""The live page's snapshot of a state dir: one JSON document per poll, built only from what
the lab already computes, so the page and the CLI cannot disagree:

    ledger        lab.report.summary.gather_ledger: `ecgpipe report --json`'s `totals` and
                  `balanced` (the same function over the same stores)
    stack, devices lab.report.status.status: `ecgpipe status --json` (components, link faults,
                  each device online or not), summed up by live_status.py
    levels        the ledger's buffered (device outboxes) and stored, and the broker's queue
                  (lab.history.brokerstats.queued_now: the $SYS watcher's latest sample less
                  the retained statuses), remembered poll after poll (live_series.LevelSeries)
    ingest rate   stored readings per simulated second over the last RATE_WINDOW_S real
                  seconds of that series
    faults        history/nemesis.jsonl paired into windows (lab.history.windows.pair_faults),
                  and the process outages the status showed (`ecgpipe kill` records none)
    ecg           the chosen device's last ECG_SECONDS of stored ECG (live_ecg.py)

Cost per poll. The stack part (status, ledger, faults) is built at most once per
`ttl = max(refresh / 2, COST_FACTOR × the time the last build took)` however many pages poll
(`build_s` in the document says how long it took), and the ECG per device once per refresh / 2;
a poll in between gets the cached document. The ledger reads every stored and buffered seq,
as `report` does: the build is about 10 ms for 3 devices and 1.1 s for 300 devices × 1,200
readings (360,000 stored) on the lab's 2-core machine, so a long, large run's page refreshes
less often (every 3.3 s there) instead of loading the machine: the server spends at most about
a quarter of a core on it. The series is at most MAX_POINTS points, the device list
MAX_DEVICE_ROWS rows (a poll's JSON is about 47 kB at 300 devices). The levels are sampled
when a page polls: the chart starts when a page first asks, and has no line where nobody asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clinic.api.live_clock import StackClock, StackTime
from clinic.api.live_ecg import ECG_SECONDS, ecg_window
from clinic.api.live_series import MAX_POINTS, LevelPoint, LevelSeries, OutageLog
from clinic.api.live_status import DOWN, device_rows, down_components, stack_state
from ecgcore.files import read_jsonl
from ingest.store_range import last_captured
from lab.errors import LabError
from lab.history.brokerstats import queued_now
from lab.history.windows import pair_faults
from lab.report.ledger import Ledger
from lab.report.sources import DATA_ERRORS, require_sources
from lab.report.status import status
from lab.report.summary import gather_ledger
from lab.stack.statedir import StateDir

REFRESH_S = 1.0  # real seconds between the page's polls
RATE_WINDOW_S = 10.0  # real seconds of levels the ingest rate is taken over
MAX_DEVICE_ROWS = 500
MAX_FAULTS = 50
COST_FACTOR = 3.0  # a build that takes c seconds is reused for 3c: at most a quarter of a core
PROCESS_FAULTS = ("kill", "term", "stop")
_READ_ERRORS: tuple[type[Exception], ...] = (LabError, OSError, *DATA_ERRORS)


class LiveSource:
    """One state dir's live snapshots, shared by every page that polls it."""

    def __init__(self, sd: StateDir, *, refresh_s: float = REFRESH_S, max_points: int = MAX_POINTS,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.sd, self.refresh_s, self.monotonic = sd, refresh_s, monotonic
        self.clock = StackClock(sd, wall)
        self.series = LevelSeries(max_points)
        self.outages = OutageLog()
        self.cost_s = 0.0
        self._lock = threading.Lock()
        self._stack: dict[str, Any] | None = None
        self._known: set[str] = set()
        self._expires = 0.0
        self._ecg: dict[str, tuple[float, dict[str, Any]]] = {}
        self._newest: tuple[float, dict[str, float]] | None = None

    def snapshot(self, device: str | None = None) -> dict[str, Any]:
        """The page's document; the ECG is `device`'s (default: the first device)."""
        doc = self.stack_part()
        rows = doc["devices"]["list"]
        chosen = device if device is not None else (rows[0]["id"] if rows else None)
        return {**doc, "ecg": self.ecg_part(chosen, doc) if chosen else None}

    def knows(self, device: str) -> bool:
        self.stack_part()
        return device in self._known

    def stack_part(self) -> dict[str, Any]:
        with self._lock:
            started = self.monotonic()
            if self._stack is None or started >= self._expires:
                self._stack = self._build()
                self.cost_s = self.monotonic() - started
                self._stack["build_s"] = round(self.cost_s, 3)
                self._expires = self.monotonic() + max(self.refresh_s / 2, COST_FACTOR * self.cost_s)
            return self._stack

    def ecg_part(self, device: str, doc: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            hit = self._ecg.get(device)
            if hit is not None and self.monotonic() < hit[0]:
                return hit[1]
        now = float(doc["now"])
        newest = doc["stack"]["state"] == DOWN or doc["speed"] != 1.0
        try:
            end = now + 1e-3
            if newest:  # the newest stored seconds (live_ecg.py says why)
                last = self._newest_captured().get(device)
                end = last + 1e-3 if last is not None else end
            ecg = ecg_window(self.sd.ingest_db, device, end, newest=newest)
            ecg["behind_s"] = round(now - ecg["end"], 3) if ecg["segments"] else None
        except _READ_ERRORS as exc:
            ecg = {"device": device, "error": str(exc), "segments": [], "seconds": ECG_SECONDS}
        with self._lock:
            if len(self._ecg) > 16:
                self._ecg.clear()
            self._ecg[device] = (self.monotonic() + self.refresh_s / 2, ecg)
        return ecg

    def _newest_captured(self) -> dict[str, float]:
        """Each device's newest stored capture time, read once per stack build (one GROUP BY
        over the store: 0.16 s at 360,000 readings)."""
        with self._lock:
            if self._newest is None or self._newest[0] != self._expires:
                found = last_captured(self.sd.ingest_db)
                self._newest = (self._expires, {d: at for d, (at, _) in found.items()})
            return self._newest[1]

    def _build(self) -> dict[str, Any]:
        st = self.clock.read()
        status_doc: dict[str, Any] | None = None
        status_error = None
        try:
            status_doc = status(self.sd)
        except _READ_ERRORS as exc:
            status_error = str(exc)
        header = stack_state(status_doc, st.from_wall, st.now)
        running = status_doc is not None and header["state"] != DOWN
        self.outages.observe(st.now, down_components(status_doc, st.from_wall, st.now)
                             if status_doc is not None and running else {})
        ledger, ledger_error = self._ledger()
        queued = queued_now(self.sd.root)
        if ledger is not None:
            self.series.min_step_s = self.refresh_s / 2 * st.speed
            self.series.add(LevelPoint(st.now, ledger.totals["buffered"], queued, ledger.totals["stored"]))
        rate = self.series.rate(RATE_WINDOW_S * st.speed)
        return {
            "now": round(st.now, 3), "speed": st.speed, "refresh_s": self.refresh_s,
            "stack": {**header, "error": status_error,
                      "delivery": status_doc.get("delivery") if status_doc else None},
            "ledger": {**ledger.totals, "balanced": ledger.balanced()} if ledger else None,
            "ledger_error": ledger_error,
            "broker_queue": queued,
            "devices": self._devices(status_doc, ledger),
            "ingest_rate": {"per_s": None if rate is None else round(rate, 2),
                            "window_s": RATE_WINDOW_S * st.speed},
            "series": self.series.as_dict(),
            "faults": self._faults(st),
        }

    def _ledger(self) -> tuple[Ledger | None, str | None]:
        try:
            require_sources(self.sd, outbox=True, ingest=True)
            return gather_ledger(self.sd), None
        except _READ_ERRORS as exc:
            return None, str(exc)

    def _devices(self, status_doc: dict[str, Any] | None, ledger: Ledger | None) -> dict[str, Any]:
        online = device_rows(status_doc)
        per = ledger.devices if ledger else {}
        ids = sorted(set(online) | set(per))
        self._known = set(ids)
        rows = []
        for d in ids[:MAX_DEVICE_ROWS]:
            led = per.get(d)
            rows.append({"id": d, "online": online.get(d, {}).get("online", False),
                         "since": online.get(d, {}).get("since"),
                         "buffered": led.buffered if led else None, "stored": led.stored if led else None,
                         "lost": led.lost if led else None})
        fleet = status_doc.get("devices") if status_doc else None
        count = fleet.get("count") if isinstance(fleet, dict) else None
        n_online = sum(1 for r in online.values() if r["online"])
        n = count if isinstance(count, int) else len(ids)
        return {"count": n, "online": n_online, "offline": max(0, n - n_online), "list": rows,
                "shown": len(rows)}

    def _faults(self, st: StackTime) -> list[dict[str, Any]]:
        """Fault windows on the simulated axis, oldest first: the nemesis history's, then the
        process outages the status showed that the history does not hold."""
        try:
            windows, _ = pair_faults(read_jsonl(self.sd.nemesis_history))
        except OSError:
            windows = []
        out: list[dict[str, Any]] = [
            {"id": w.id, "fault": w.fault, "target": w.target, "start": w.start, "end": w.end,
             "source": "history"} for w in windows]
        for o in self.outages.windows:
            if any(w.target == o.target and w.fault in PROCESS_FAULTS
                   and w.contains(o.start, before=5 * st.speed) for w in windows):
                continue
            out.append({"id": f"{o.target}-down", "fault": o.what, "target": o.target, "start": o.start,
                        "end": o.end, "source": "status"})
        out.sort(key=lambda f: float(f["start"]))
        return out[-MAX_FAULTS:]


_SOURCES: dict[Path, LiveSource] = {}
_SOURCES_LOCK = threading.Lock()


def source_for(sd: StateDir) -> LiveSource:
    """The one LiveSource of a state dir in this process (its series lives as long as the server)."""
    key = sd.root.resolve()
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            _SOURCES[key] = LiveSource(sd)
        return _SOURCES[key]
