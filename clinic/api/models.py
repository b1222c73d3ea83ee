"""The API's response bodies (pydantic): what `/openapi.json` promises and schemathesis checks.

Times are `Instant`s, `{"unix": <Unix seconds>, "iso": "2026-11-30T12:00:00Z"}` (capture times
are the devices' simulated clock, as everywhere in the lab). Documents the lab already builds
(the report, `status`) are passed through as JSON objects: their fields are documented with
the commands that print them (`ecgpipe report --json`, `ecgpipe status --json`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from lab.timefmt import iso


class Instant(BaseModel):
    unix: float = Field(description="Unix seconds")
    iso: str = Field(description="ISO 8601 UTC")


def instant(t: float | None) -> Instant | None:
    return None if t is None else Instant(unix=round(float(t), 3), iso=iso(float(t), ms=True))


class Profile(BaseModel):
    """The simulated patient behind a device (fleet/profiles.json), in short."""

    catalogue: str | None = None
    rhythm: str | None = None
    hr_bpm: float | None = None
    cohort: str | None = None
    recording: str | None = None
    sample_rate_hz: int | None = None


class NotReceived(BaseModel):
    """Readings the device captured that the store does not hold yet, and where they are."""

    count: int = Field(description="buffered_on_device + sent_not_stored")
    buffered_on_device: int = Field(description="in the device's outbox, not stored")
    oldest_buffered: Instant | None = Field(description="capture time of the oldest of those")
    sent_not_stored: int = Field(description="while the stack runs: let go of by the device, not "
                                             "stored yet: in flight, queued at the broker, or lost")
    lost: int = Field(description="with the stack stopped: sent and never stored")
    evicted: int = Field(description="dropped by the device's full outbox: will never arrive")
    stack_running: bool = Field(description="whether any component of the stack runs")
    sentence: str = Field(description="the same, for a person")


class PatientSummary(BaseModel):
    id: str
    profile: Profile | None
    last_reading: Instant | None = Field(description="capture time of the newest stored reading")
    readings_stored: int
    readings_generated: int | None = Field(description="captured by the device so far (None: no "
                                                       "device outbox in the state dir)")
    completeness: float | None = Field(description="stored / generated (0..1)")
    not_received: NotReceived | None = Field(description="None when the state dir has no outboxes")


class PatientList(BaseModel):
    as_of: Instant
    patients: list[PatientSummary]


class PatientDetail(PatientSummary):
    as_of: Instant
    missing_ranges: list[list[int]] = Field(description="[first, last] seq ranges not stored")
    profile_entry: dict[str, Any] | None = Field(description="fleet/profiles.json's whole entry")


class ReadingOut(BaseModel):
    boot_epoch: int
    seq: int
    captured_at: Instant
    end_at: float = Field(description="Unix seconds just after the last sample")
    stored_at: float
    sample_rate_hz: int
    gain_uv: float = Field(description="microvolts per count")
    n_samples: int
    flags: int = Field(description="the wire's flag bits: 1 backlog, 2 signed, 4 lead-off")
    counts: list[int] | None = Field(default=None, description="samples as int16 counts")
    millivolts: list[float] | None = Field(default=None, description="samples in mV")
    png: str = Field(description="this reading on ECG paper")


class Gap(BaseModel):
    after_seq: int
    before_seq: int
    start: Instant = Field(description="the end of the reading before the gap")
    end: Instant = Field(description="the start of the reading after it")
    seconds: float
    missing_readings: int = Field(description="seqs between the two not stored")


class ReadingsPage(BaseModel):
    patient: str
    start: Instant | None = Field(description="the range asked for (`from`), inclusive")
    end: Instant | None = Field(description="the range's end (`to`), exclusive")
    count: int
    truncated: bool = Field(description="more readings lie in the range than `limit`")
    readings: list[ReadingOut]
    gaps: list[Gap]


class EventOut(BaseModel):
    kind: str = Field(description="brady, tachy, pause, af, unreadable")
    onset: Instant
    end: Instant | None = Field(description="None while ongoing")
    raised_at: Instant
    delay_s: float = Field(description="raised_at - onset")
    ongoing: bool
    evidence: dict[str, Any]


class EventList(BaseModel):
    patient: str
    analysis: bool = Field(description="whether the state dir has the analysis stage's store")
    events: list[EventOut]


class LedgerDoc(BaseModel):
    available: bool
    reason: str | None = Field(description="why there is no ledger (no outboxes or store)")
    report: dict[str, Any] | None = Field(description="`ecgpipe report --json`")


class Backlog(BaseModel):
    """Each tier's level now."""

    generated: int
    stored: int
    buffered_on_devices: int = Field(description="in the outboxes, not stored")
    queued_at_broker: int | None = Field(description="the $SYS watcher's latest sample")
    sent_not_stored: int


class OutageDoc(BaseModel):
    as_of: Instant
    stack: bool = Field(description="whether the state dir holds a stack")
    impaired: list[str] = Field(description="one line per component down or link faulted")
    backlog: Backlog
    status: dict[str, Any] | None = Field(description="`ecgpipe status --json`")
    faults: list[dict[str, Any]] = Field(description="the last faults from history/nemesis.jsonl")
