"""`ecgpipe inspect alerts [--device ID] [--json]`: the analysis stage's clinical events.

    inspect_alerts(sd, device, now) -> dict      the document (--json prints it; Unix seconds)
    format_alerts(doc, now) -> str               the text: ISO times, and the delay in words

Each event: its device and kind, onset (capture time: when the patient's heart did it), end
(None while ongoing), raised (the analysis clock: when the system knew) and the delay
raised − onset: seconds for a live event, hours or days for one that waited in a backlog.
Read from DIR/analysis/analysis.sqlite through analysis.store_view; a missing store reads as
no events (the stack may run without the analysis), a damaged one is a StateDirError naming
the file (one line, exit 1).
"""

from __future__ import annotations

from typing import Any

from analysis.errors import AnalysisError
from analysis.store_view import events, progress
from lab.errors import StateDirError
from lab.report.sources import require_sources
from lab.stack.statedir import StateDir
from lab.timefmt import ago, iso


def inspect_alerts(sd: StateDir, device: str | None, now: float) -> dict[str, Any]:
    """Every event (of one device), by device and onset, with the analysis' progress."""
    if not sd.root.is_dir():  # no state dir at all is an error, not "no events"
        raise StateDirError(f"no ecgpipe state in {sd.root}: run `ecgpipe up` first (or pass --state-dir)")
    db = sd.analysis_db
    if db.exists() or db.is_symlink():  # missing: the stack ran without the analysis (said on screen)
        require_sources(sd, analysis=True)
    try:
        found = events(db, device)
        prog = progress(db)
    except AnalysisError as exc:
        raise StateDirError(f"the analysis store is damaged: {exc}") from exc
    rows: list[dict[str, Any]] = [{"device": e.device_id, "kind": e.kind, "onset": e.onset, "end": e.end,
             "raised_at": e.raised_at, "delay_s": round(e.raised_at - e.onset, 3),
             "ongoing": e.end is None, "evidence": e.evidence} for e in found]
    by_kind: dict[str, int] = {}
    for r in rows:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
    return {"db": str(db), "exists": db.exists(), "device": device, "now": now,
            "events": rows, "by_kind": dict(sorted(by_kind.items())), "progress": prog}


def _evidence(ev: dict[str, Any]) -> str:
    parts = []
    if ev.get("hr_bpm") is not None:
        parts.append(f"HR {ev['hr_bpm']:g}")
    if ev.get("pause_s") is not None:
        parts.append(f"pause {ev['pause_s']:g} s")
    if ev.get("nrmssd") is not None and ev.get("entropy") is not None:
        parts.append(f"nRMSSD {ev['nrmssd']:g} ShE {ev['entropy']:g}")
    if ev.get("lead_off"):
        parts.append("lead off")
    if ev.get("quality_min") is not None:
        parts.append(f"quality {ev['quality_min']:g}")
    return ", ".join(parts)


def format_alerts(doc: dict[str, Any], now: float) -> str:
    """One line per event, then a summary line; the delay says how late the system knew."""
    scope = f" of {doc['device']}" if doc.get("device") else ""
    if not doc.get("exists"):
        return f"no analysis store yet ({doc['db']}): nothing analysed{scope}"
    prog = doc.get("progress") or {}
    lines = [f"{'device':<10} {'kind':<10} {'onset':<20} {'end':<20} {'raised':<20} {'delay':>12}  evidence"]
    for e in doc["events"]:
        end = "ongoing" if e["end"] is None else iso(e["end"])
        lines.append(f"{e['device']:<10} {e['kind']:<10} {iso(e['onset']):<20} {end:<20} "
                     f"{iso(e['raised_at']):<20} {ago(e['delay_s']):>12}  {_evidence(e['evidence'])}")
    kinds = ", ".join(f"{n} {k}" for k, n in doc["by_kind"].items()) or "none"
    updated = prog.get("updated_at")
    last = f"; last batch {ago(now - updated)} ago" if isinstance(updated, int | float) else ""
    lines.append(f"{len(doc['events'])} events{scope} ({kinds}); {prog.get('analysed', 0)} readings "
                 f"analysed, {prog.get('behind', 0)} behind{last}")
    return "\n".join(lines)
