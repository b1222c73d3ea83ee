"""Broker counters from the watcher's history, summed across broker restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecgcore.files import read_json, read_jsonl

DROPPED = "publish/messages/dropped"
STORED = "store/messages/count"
RETAINED = "retained messages/count"  # in STORED too: the devices' retained statuses are not a backlog


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Pure: per-incarnation last values → totals. Counters reset when the broker restarts,
    so a cumulative counter's total is the sum of each incarnation's last value."""
    last: dict[int, dict[str, float]] = {}
    peak_stored = 0.0
    for rec in records:
        inc = int(rec.get("incarnation", 0))
        vals = last.setdefault(inc, {})
        vals.update(rec.get("values", {}))
        peak_stored = max(peak_stored, float(rec.get("values", {}).get(STORED, 0)))
    dropped = sum(int(v.get(DROPPED, 0)) for v in last.values())
    current = last[max(last)] if last else {}
    return {
        "dropped": dropped,
        "restarts_seen": max(0, len(last) - 1),
        "stored_messages": current.get(STORED),
        "stored_messages_peak": peak_stored if records else None,
        "current": current,
    }


def broker_stats(state_root: Path) -> dict[str, Any]:
    out = summarize(read_jsonl(state_root / "watch" / "sys.jsonl"))
    latest = read_json(state_root / "watch" / "latest.json") or {}
    out["sampled_at"] = latest.get("t")
    return out


def queued_now(state_root: Path) -> int | None:
    """Messages the broker holds for subscribers, from the watcher's latest sample: its stored
    count less its retained messages (the statuses are no backlog). None when there is no
    sample yet, or it lacks the counters."""
    latest = read_json(state_root / "watch" / "latest.json")
    values = latest.get("values") if isinstance(latest, dict) else None
    if not isinstance(values, dict) or not isinstance(values.get(STORED), int | float):
        return None
    retained = values.get(RETAINED, 0)
    return max(0, int(values[STORED]) - int(retained if isinstance(retained, int | float) else 0))
