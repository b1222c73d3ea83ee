"""Parsers of the history's JSON-lines records: pure, records in, events out.

Malformed records (a torn last line, a record without its keys, an unknown event) are skipped
and counted; nothing here raises on bad history content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lab.history.brokerstats import DROPPED, RETAINED, STORED
from lab.history.events import (
    Boot,
    BrokerAcked,
    BrokerSample,
    DeviceEvent,
    Evicted,
    Generated,
    IngestAcked,
    Published,
)


def as_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"not a number: {v!r}")
    return float(v)


def as_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"not an integer: {v!r}")
    return v


def as_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"not a string: {v!r}")
    return v


def parse_device_event(rec: Mapping[str, Any]) -> DeviceEvent:
    """One devices.jsonl record → its event; KeyError/TypeError/ValueError when malformed."""
    ev = rec["ev"]
    t, dev, boot = as_float(rec["t"]), as_str(rec["dev"]), as_int(rec["boot"])
    if ev == "boot":
        return Boot(t, dev, boot, as_int(rec["next_seq"]))
    seq = as_int(rec["seq"])
    if ev == "generated":
        cap = rec.get("cap")
        return Generated(t, dev, boot, seq, None if cap is None else as_float(cap))
    if ev == "published":
        resend = rec.get("resend")
        return Published(t, dev, boot, seq, as_int(rec.get("qos", 1)), bool(rec.get("backlog", False)),
                         None if resend is None else as_str(resend))
    if ev == "broker_acked":
        return BrokerAcked(t, dev, boot, seq)
    if ev == "ingest_acked":
        return IngestAcked(t, dev, boot, seq)
    if ev == "evicted":
        return Evicted(t, dev, boot, seq, as_str(rec.get("reason", "unknown")))
    raise ValueError(f"unknown device event {ev!r}")


def parse_device_events(records: Iterable[Mapping[str, Any]]) -> tuple[list[DeviceEvent], int]:
    """Every well-formed reading or boot record, in order, and how many were skipped ("truth"
    records are lab/history/truth.py's, neither parsed nor skipped here)."""
    out: list[DeviceEvent] = []
    skipped = 0
    for rec in records:
        if rec.get("ev") == "truth":  # ground truth, not a reading's event (lab/history/truth.py)
            continue
        try:
            out.append(parse_device_event(rec))
        except (KeyError, TypeError, ValueError):
            skipped += 1
    return out, skipped


def broker_samples(records: Iterable[Mapping[str, Any]]) -> tuple[list[BrokerSample], int]:
    """watch/sys.jsonl records → one sample per record that carries either counter, with the
    other counter carried forward from the same incarnation (a restart resets both)."""
    out: list[BrokerSample] = []
    skipped = 0
    last: dict[int, dict[str, float]] = {}
    for rec in records:
        try:
            t, inc = as_float(rec["t"]), int(rec.get("incarnation", 0))
            values = rec.get("values", {})
            if not isinstance(values, Mapping):
                raise TypeError("values is not an object")
        except (KeyError, TypeError, ValueError):
            skipped += 1
            continue
        known = last.setdefault(inc, {})
        changed = False
        for name in (STORED, DROPPED, RETAINED):
            if name in values:
                try:
                    known[name] = as_float(values[name])
                    changed = True
                except TypeError:
                    skipped += 1
        if changed:
            out.append(BrokerSample(t, inc, known.get(STORED), known.get(DROPPED), known.get(RETAINED)))
    return out, skipped
