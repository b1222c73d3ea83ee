"""The clinical side of a history: what each patient's heart really did (the generator's ground
truth), what the analysis stage said it did (its clinical events), and who each patient is.

    TruthSegment    one rhythm or artifact segment, from history/devices.jsonl "truth" records
    ClinicalEvent   one event of the analysis stage (analysis/analysis.sqlite)
    Patient         what fleet/profiles.json says of a device: its rate, rhythm, reading length
    parse_truth     devices.jsonl records → deduplicated segments, and how many were malformed

The fleet writes a segment when it begins (and again after a restart, with the same start):

    {"t", "ev": "truth", "dev", "kind": "rhythm"|"artifact", "label", "start", "end", "episode"}

`end` is null for a device's baseline rhythm (it lasts until the run ends). Segments are
deduplicated on (dev, kind, label, start); a later copy that knows the end wins. Times are
simulated Unix seconds. Pure: no file is read here (lab/history/load.py reads them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.history.records import as_float, as_str

TRUTH_EVENT = "truth"
RHYTHM, ARTIFACT = "rhythm", "artifact"
# the analysis stage's names of event kinds → the lab's (brady | tachy | pause | af | unreadable)
EVENT_KINDS = {"bradycardia": "brady", "tachycardia": "tachy"}


@dataclass(frozen=True, slots=True)
class TruthSegment:
    """A rhythm (sinus, af, brady, af-episode, vt-run, pause, ...) or an artifact (lead-off,
    motion, emg, wander, mains) a device's signal carried from start to end (None: until the
    run ends)."""

    dev: str
    kind: str  # rhythm | artifact
    label: str
    start: float
    end: float | None = None
    episode: bool = False  # a scheduled episode (else the device's baseline)
    hr_bpm: float | None = None  # the rate the generator set, when the record says

    @property
    def key(self) -> tuple[str, str, str, float]:
        return (self.dev, self.kind, self.label, self.start)

    def until(self, run_end: float) -> float:
        return run_end if self.end is None else self.end


@dataclass(frozen=True, slots=True)
class ClinicalEvent:
    """What the analysis stage raised: `onset`/`end` are capture times (when the patient's heart
    did it), `raised_at` is when the system knew."""

    dev: str
    kind: str  # brady | tachy | pause | af | unreadable (EVENT_KINDS maps the analysis' names)
    onset: float
    raised_at: float
    end: float | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Patient:
    """A device's patient as fleet/profiles.json gives it (None: not said)."""

    dev: str
    hr_bpm: float | None = None
    rhythm: str | None = None  # the catalogue entry
    reading_s: float | None = None  # one reading's length: the chunk, or strip / chunks
    entry: Mapping[str, Any] = field(default_factory=dict)  # the raw entry, for truth_beats


def parse_truth_record(rec: Mapping[str, Any]) -> TruthSegment:
    """One "truth" record → its segment; KeyError/TypeError/ValueError when malformed."""
    kind = as_str(rec["kind"])
    if kind not in (RHYTHM, ARTIFACT):
        raise ValueError(f"unknown truth kind {kind!r}")
    end, hr = rec.get("end"), rec.get("hr_bpm")
    return TruthSegment(as_str(rec["dev"]), kind, as_str(rec["label"]), as_float(rec["start"]),
                        None if end is None else as_float(end), bool(rec.get("episode", False)),
                        None if hr is None else as_float(hr))


def parse_truth(records: Iterable[Mapping[str, Any]]) -> tuple[list[TruthSegment], int]:
    """The "truth" records among `records` → segments deduplicated on (dev, kind, label,
    start), in order of first appearance (a copy with an end replaces one without); and how
    many truth records were malformed. Other records are ignored."""
    out: dict[tuple[str, str, str, float], TruthSegment] = {}
    skipped = 0
    for rec in records:
        if rec.get("ev") != TRUTH_EVENT:
            continue
        try:
            seg = parse_truth_record(rec)
        except (KeyError, TypeError, ValueError):
            skipped += 1
            continue
        old = out.get(seg.key)
        if old is None or (old.end is None and seg.end is not None):
            out[seg.key] = seg
    return list(out.values()), skipped


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def patient(dev: str, entry: Mapping[str, Any]) -> Patient:
    """A fleet/profiles.json entry as a Patient (a field of the wrong type reads as not said)."""
    chunk = _num(entry.get("chunk_seconds"))
    strip, chunks = _num(entry.get("strip_seconds")), _num(entry.get("strip_chunks"))
    reading = strip / (chunks or 1.0) if strip and entry.get("recording") == "strip" else chunk
    rhythm = entry.get("rhythm", entry.get("catalogue"))
    return Patient(dev, _num(entry.get("hr_bpm")), rhythm if isinstance(rhythm, str) else None,
                   reading, dict(entry))
