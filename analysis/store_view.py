"""Read-only queries on DIR/analysis/analysis.sqlite, for the lab (report, `inspect alerts`,
scoring beats against ground truth). No neurokit2 here.

    events(db, device=None) -> list[Event]                    by device, then onset
    detected_beats(db, device, t0, t1) -> np.ndarray          capture times in [t0, t1)
    progress(db) -> dict                                      readings analysed, cursor, lag

Read like the other stores' views (ecgcore.sqlite_snapshot): one read-only snapshot per call,
never a write lock; a missing file reads as empty; a file that is not a readable database (or
a directory in its place) raises analysis.errors.StoreError, an AnalysisError.

An event's `end` is None while it is ongoing: it held to the end of the signal it was seen in
(`open`) and no analysed signal of its device lies more than ONGOING_SLACK_S beyond it. An
open event followed by newer signal (its device came back after a gap, say) ends at the last
capture time it was seen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import StoreError
from analysis.model import Event
from ecgcore.sqlite_snapshot import SnapshotError, read_snapshot

ONGOING_SLACK_S = 5.0
# {where} is one of two constant strings; every value is bound
_EVENTS_SQL = ("SELECT id, device_id, kind, onset, last_seen, open, raised_at, updated_at, evidence"
               " FROM events {where} ORDER BY device_id, onset, id")
_LATEST_SQL = ("SELECT d.device_id, (SELECT s.t1 FROM segments s WHERE s.device_id = d.device_id"
               " ORDER BY s.t0 DESC LIMIT 1) FROM devices d {where}")


def _latest(rows: list[tuple[Any, ...]]) -> dict[str, float]:
    return {str(dev): float(t1) for dev, t1 in rows if t1 is not None}


def events(db_path: Path | str, device: str | None = None) -> list[Event]:
    """Every event (of one device), by device, onset and id."""
    where, params = ("WHERE device_id = ?", (device,)) if device is not None else ("", ())
    latest_where = "WHERE d.device_id = ?" if device is not None else ""
    try:
        with read_snapshot(db_path) as snap:
            rows = snap.rows(_EVENTS_SQL.format(where=where), params)
            latest = _latest(snap.rows(_LATEST_SQL.format(where=latest_where), params))
    except SnapshotError as exc:
        raise StoreError(str(exc)) from exc
    out = []
    for i, dev, kind, onset, last, is_open, raised, updated, evidence in rows:
        try:
            doc = json.loads(evidence)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"{db_path}: event {i} has damaged evidence: {exc}") from exc
        ongoing = bool(is_open) and float(last) >= latest.get(str(dev), float(last)) - ONGOING_SLACK_S
        out.append(Event(device_id=str(dev), kind=str(kind), onset=float(onset),
                         end=None if ongoing else float(last), raised_at=float(raised),
                         evidence=doc if isinstance(doc, dict) else {}, id=int(i),
                         updated_at=float(updated), last_seen=float(last)))
    return out


def detected_beats(db_path: Path | str, device: str, t0: float, t1: float) -> npt.NDArray[np.float64]:
    """The capture times of the beats detected for `device` in [t0, t1), sorted."""
    try:
        with read_snapshot(db_path) as snap:
            rows = snap.rows("SELECT t FROM beats WHERE device_id = ? AND t >= ? AND t < ? ORDER BY t",
                             (device, float(t0), float(t1)))
    except SnapshotError as exc:
        raise StoreError(str(exc)) from exc
    return np.asarray([r[0] for r in rows], dtype=np.float64)


def progress(db_path: Path | str) -> dict[str, Any]:
    """How far the analysis has got: readings `analysed`, `cursor` (the ingest store's rowid
    analysed up to), `behind` (readings stored but not analysed when it last looked), `batches`,
    `events`, `devices`, `updated_at` (analysis clock of the last batch), `lag_s` (that minus
    the newest analysed reading's stored_at: how long after storage it was analysed)."""
    try:
        with read_snapshot(db_path) as snap:
            state = {str(k): float(v) for k, v in snap.rows("SELECT key, value FROM state")}
            n_events = snap.rows("SELECT COUNT(*) FROM events")
            devices = snap.rows("SELECT COUNT(*) FROM devices")
    except SnapshotError as exc:
        raise StoreError(str(exc)) from exc
    cursor = int(state.get("cursor", 0))
    updated = state.get("updated_at")
    stored = state.get("last_stored_at")
    return {
        "analysed": int(state.get("analysed", 0)), "cursor": cursor,
        "behind": max(0, int(state.get("store_rowid", cursor)) - cursor),
        "batches": int(state.get("batches", 0)),
        "events": int(n_events[0][0]) if n_events else 0,
        "devices": int(devices[0][0]) if devices else 0,
        "updated_at": updated,
        "lag_s": None if updated is None or stored is None else round(updated - stored, 3),
    }
