"""The patients as the API lists them: last reading, completeness, and what has not arrived.

Every count comes from the lab's own sources, read as `report` and `inspect` read them: the
ledger (lab.report.summary.gather_ledger: generated, stored, buffered, evicted, and `lost`,
the remainder), the store (ingest.store_range.last_captured), the outboxes
(devices.outbox_view.buffered_readings for the oldest buffered capture time), the profiles
(fleet/profiles.json). Nothing here recounts differently.

"Not yet received" is what the device captured and the store does not hold, less what the
device evicted (that will never arrive): `buffered_on_device` (the ledger's buffered: in the
outbox and not stored) plus, while any component of the stack runs, `sent_not_stored` (the
ledger's lost: the device let go of it and the store does not hold it, so it is in flight,
queued at the broker, or lost; the lab cannot tell these apart per reading while the outage
lasts). Once nothing runs (after `down`, a finished scenario run) those can no longer arrive:
they are `lost`, and not counted as "not yet received". The sentence's "oldest" is the oldest
buffered reading's capture time (the outboxes keep capture times; the broker's queue does not
show them).
"""

from __future__ import annotations

from typing import Any

from clinic.api.models import Instant, NotReceived, PatientSummary, Profile, instant
from devices import outbox_view
from devices.profiles_file import read_profiles
from ingest import store_view
from ingest.store_range import last_captured
from lab.errors import LabError
from lab.report.ledger import DeviceLedger, Ledger
from lab.report.summary import gather_ledger
from lab.stack.procs import EXITED
from lab.stack.statedir import StateDir
from lab.timefmt import ago


class Census:
    """One read of the sources, for every patient of a state dir."""

    def __init__(self, sd: StateDir) -> None:
        self.sd = sd
        self.has_outbox = sd.outbox_db.is_file()
        self.ledger = gather_ledger(sd).devices if self.has_outbox else {}
        self.last = last_captured(sd.ingest_db)
        self.profiles: dict[str, dict[str, Any]] = read_profiles(sd.devices_json.parent) or {}
        self._stored: dict[str, set[int]] | None = None
        self.live = stack_live(sd)

    def ids(self) -> list[str]:
        return sorted(set(self.ledger) | set(self.last))

    def ledger_totals(self) -> dict[str, int]:
        """The ledger's totals (generated, stored, duplicates, buffered, evicted, lost)."""
        return Ledger(self.ledger).totals

    def oldest_buffered(self, device_id: str) -> float | None:
        """Capture time of the device's oldest outbox reading the store does not hold."""
        if self._stored is None:
            self._stored = store_view.stored_seqs(self.sd.ingest_db)
        stored = self._stored.get(device_id, set())
        times = [float(r["captured_at"]) for r in outbox_view.buffered_readings(self.sd.outbox_db, device_id)
                 if r["seq"] not in stored and r["captured_at"] is not None]
        return min(times) if times else None

    def summary(self, device_id: str, now: float) -> PatientSummary:
        at, stored = self.last.get(device_id, (None, 0))
        led = self.ledger.get(device_id)
        generated = led.generated if led is not None else None
        return PatientSummary(
            id=device_id, profile=profile_summary(self.profiles.get(device_id)),
            last_reading=instant(at), readings_stored=stored, readings_generated=generated,
            completeness=round(led.stored / led.generated, 6) if led is not None and led.generated else None,
            not_received=self.not_received(device_id, led, now) if led is not None else None)

    def not_received(self, device_id: str, led: DeviceLedger, now: float) -> NotReceived:
        oldest = self.oldest_buffered(device_id) if led.buffered else None
        transit, lost = (led.lost, 0) if self.live else (0, led.lost)
        return NotReceived(count=led.buffered + transit, buffered_on_device=led.buffered,
                           oldest_buffered=instant(oldest), sent_not_stored=transit, lost=lost,
                           evicted=led.evicted, stack_running=self.live,
                           sentence=sentence(led, oldest, now, live=self.live))


def known_device(sd: StateDir, device_id: str) -> bool:
    """Whether the state dir knows the device: its store, its outboxes or its profiles."""
    if device_id in last_captured(sd.ingest_db):
        return True
    if sd.outbox_db.is_file() and any(r["device_id"] == device_id
                                      for r in outbox_view.device_summaries(sd.outbox_db)):
        return True
    return device_id in (read_profiles(sd.devices_json.parent) or {})


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def sentence(led: DeviceLedger, oldest: float | None, now: float, *, live: bool) -> str:
    """"42 readings captured but not yet received, the oldest 3 h ago (40 buffered on the
    device; 2 sent but not stored yet: ...)", or "all 120 captured readings received"; with
    what will never arrive (lost once the stack is stopped, evicted) after a "; "."""
    transit, lost = (led.lost, 0) if live else (0, led.lost)
    count = led.buffered + transit
    parts = []
    if count:
        text = f"{_plural(count, 'reading')} captured but not yet received"
        if oldest is not None:
            text += f", the oldest {ago(max(0.0, now - oldest))} ago"
        where = [f"{led.buffered} buffered on the device"] if led.buffered else []
        if transit:
            where.append(f"{transit} sent but not stored yet: in flight, queued at the broker, or lost")
        parts.append(f"{text} ({'; '.join(where)})")
    if lost:
        parts.append(f"{_plural(lost, 'reading')} sent but never stored: lost")
    if led.evicted:
        parts.append(f"{_plural(led.evicted, 'reading')} evicted by the device's full outbox: "
                     f"will never arrive")
    return "; ".join(parts) or f"all {_plural(led.stored, 'captured reading')} received"


def stack_live(sd: StateDir) -> bool:
    """Whether any component of the stack runs (or is frozen): then what was sent and is not
    stored may still arrive."""
    try:
        return any(sd.component(n).state() != EXITED for n in sd.component_names())
    except LabError:  # a damaged pidfile: say "may still arrive" rather than "lost"
        return True


def profile_summary(entry: dict[str, Any] | None) -> Profile | None:
    if not isinstance(entry, dict):
        return None

    def text(key: str) -> str | None:
        v = entry.get(key)
        return v if isinstance(v, str) else None

    hr, rate = entry.get("hr_bpm"), entry.get("sample_rate_hz")
    return Profile(catalogue=text("catalogue"), rhythm=text("rhythm"), cohort=text("cohort"),
                   recording=text("recording"),
                   hr_bpm=float(hr) if isinstance(hr, int | float) and not isinstance(hr, bool) else None,
                   sample_rate_hz=rate if isinstance(rate, int) and not isinstance(rate, bool) else None)


def as_of(now: float) -> Instant:
    got = instant(now)
    if got is None:  # now is a float: never
        raise ValueError("no time")
    return got
