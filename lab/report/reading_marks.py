"""What `inspect reading --png` adds to the trace, like a handheld monitor's report: the beats
the analysis detects (marked above the trace), the measured HR, PR, QRS and QT (neurokit2's
delineation through analysis.measure), and the rhythm the patient really had at that moment
(the generator's ground truth in history/devices.jsonl: the baseline rhythm, or the episode
and artifacts covering the reading's capture time).

    annotate(sd, device_id, captured_at, duration_s, mv, rate) -> Marks
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lab.history.truth import RHYTHM, TruthSegment, parse_truth
from lab.stack.statedir import StateDir

_TRUTH_MARK = '"ev":"truth"'  # only these lines of the (possibly long) history are parsed


@dataclass(frozen=True)
class Marks:
    beats: tuple[int, ...] = ()  # sample indices of detected beats
    measured: dict[str, Any] = field(default_factory=dict)  # hr_bpm, pr_ms, qrs_ms, qt_ms
    rhythm: str | None = None  # the ground truth's rhythm at the capture time
    artifacts: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The margin: measurements, then the rhythm the profile had."""
        m = self.measured

        def ms(key: str) -> str:
            return "-" if m.get(key) is None else f"{m[key]:.0f} ms"

        hr = "-" if m.get("hr_bpm") is None else f"{m['hr_bpm']:.0f} bpm"
        around = (f", measured with {m['context_s']:g} s of stored signal around it"
                  if m.get("context_s") else "")
        out = [(f"HR {hr}   PR {ms('pr_ms')}   QRS {ms('qrs_ms')}   QT {ms('qt_ms')}   "
                f"{len(self.beats)} beats detected (^){around}")]
        truth = self.rhythm or "unknown (no ground truth in the history)"
        if self.artifacts:
            truth += ", with " + ", ".join(self.artifacts)
        out.append(f"the patient's rhythm then: {truth}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"beats": len(self.beats), **{k: v for k, v in self.measured.items() if k != "beats"},
                "rhythm": self.rhythm, "artifacts": list(self.artifacts)}


def _truth_records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open("rb") as fh:
            for raw in fh:
                if _TRUTH_MARK.encode() not in raw:
                    continue
                try:
                    rec = json.loads(raw)
                except ValueError:  # a torn last line; parse_truth counts malformed ones
                    continue
                if isinstance(rec, dict):
                    yield rec
    except OSError:  # no history (or unreadable): the rhythm is unknown, and the margin says so
        return


def truth_at(sd: StateDir, device_id: str, t: float) -> tuple[str | None, tuple[str, ...]]:
    """(rhythm label, artifact labels) of the device's ground truth covering time t."""
    segments, _ = parse_truth(_truth_records(sd.root / "history" / "devices.jsonl"))

    def covers(s: TruthSegment) -> bool:
        return s.dev == device_id and s.start <= t and (s.end is None or t < s.end)

    here = [s for s in segments if covers(s)]
    rhythms = sorted((s for s in here if s.kind == RHYTHM), key=lambda s: (s.episode, s.start))
    rhythm = None
    if rhythms:
        top = rhythms[-1]  # an episode over the baseline; the latest of several
        rhythm = f"{top.label} (episode)" if top.episode else top.label
    return rhythm, tuple(sorted({s.label for s in here if s.kind != RHYTHM}))


CONTEXT_S = 5.0  # a short reading is measured with up to this much stored signal each side


def _contiguous(sd: StateDir, device_id: str, seq: int, captured_at: float, n: int, rate: int,
                step: int) -> list[npt.NDArray[np.float64]]:
    """Stored readings next to `seq` (step -1: before it, +1: after), while each one joins the
    previous without a gap (same boot and sample rate), up to CONTEXT_S of signal."""
    from ingest.store_reading import stored_reading
    from ingest.store_view import reading_samples

    out: list[npt.NDArray[np.float64]] = []
    edge = captured_at if step < 0 else captured_at + n / rate
    got = 0.0
    s = seq + step
    while got < CONTEXT_S and s >= 0:
        row = stored_reading(sd.ingest_db, device_id, s)
        if row is None or row.sample_rate_hz != rate:
            break
        end = row.captured_at + row.n_samples / rate
        if abs((end if step < 0 else row.captured_at) - edge) > 1.5 / rate:
            break  # a gap (or another boot's seq): not the same stretch of signal
        samples = reading_samples(sd.ingest_db, device_id, row.boot_epoch, s)
        if samples is None:
            break
        out.append(samples.millivolts())
        edge = row.captured_at if step < 0 else end
        got += row.n_samples / rate
        s += step
    return out[::-1] if step < 0 else out


def annotate(sd: StateDir, device_id: str, seq: int, captured_at: float, mv: npt.NDArray[np.float64],
             rate: int) -> Marks:
    """Beats, intervals and the true rhythm of one reading. A reading shorter than 2 x
    CONTEXT_S (a 1-s chunk holds one or two beats) is measured with the stored signal around
    it, when there is some; its beats are still marked on the reading alone."""
    from analysis.measure import measure  # neurokit2: only when a PNG is drawn

    before: list[npt.NDArray[np.float64]] = []
    after: list[npt.NDArray[np.float64]] = []
    if mv.size < 2 * CONTEXT_S * rate:
        before = _contiguous(sd, device_id, seq, captured_at, mv.size, rate, -1)
        after = _contiguous(sd, device_id, seq, captured_at, mv.size, rate, +1)
    lead = sum(b.size for b in before)
    measured = measure(np.concatenate([*before, mv, *after]), rate)
    beats = tuple(int(b) - lead for b in measured.get("beats", ()) if lead <= int(b) < lead + mv.size)
    context_s = round((lead + sum(a.size for a in after)) / rate, 3)  # stored signal around it
    measured = {**measured, "beats": list(beats), "context_s": context_s}
    rhythm, artifacts = truth_at(sd, device_id, captured_at + 0.5 * mv.size / rate)
    return Marks(beats, measured, rhythm, artifacts)
