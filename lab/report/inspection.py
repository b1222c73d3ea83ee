"""`ecgpipe inspect ...`: what is buffered where. Reads only the state dir."""

from __future__ import annotations

from typing import Any

from devices import outbox_view as dev_inspect
from ingest import store_view as ing_inspect
from lab.errors import StateDirError
from lab.history.brokerstats import broker_stats
from lab.stack.statedir import StateDir


def require_state_dir(sd: StateDir) -> None:
    if not sd.root.exists() or not (sd.exists() or sd.outbox_db.exists() or sd.ingest_db.exists()):
        raise StateDirError(f"no ecgpipe state in {sd.root}: run `ecgpipe up` first (or pass --state-dir)")


def inspect_devices(sd: StateDir, now: float) -> dict[str, Any]:
    require_state_dir(sd)
    rows = dev_inspect.device_summaries(sd.outbox_db)
    for r in rows:
        oldest = r.get("oldest_captured_at")
        r["oldest_age_s"] = round(now - oldest, 3) if oldest is not None else None
    return {"devices": rows,
            "totals": {key: sum(r[key] for r in rows) for key in ("buffered", "evicted", "bytes")}}


def inspect_device(sd: StateDir, device_id: str) -> dict[str, Any]:
    require_state_dir(sd)
    known = {r["device_id"] for r in dev_inspect.device_summaries(sd.outbox_db)}
    if device_id not in known:
        raise StateDirError(f"no device {device_id!r} in {sd.outbox_db}")
    return {"device_id": device_id, "buffered": dev_inspect.buffered_readings(sd.outbox_db, device_id)}


def inspect_broker(sd: StateDir) -> dict[str, Any]:
    require_state_dir(sd)
    return broker_stats(sd.root)


def inspect_ingest(sd: StateDir) -> dict[str, Any]:
    require_state_dir(sd)
    generated = {d: v["generated"] for d, v in dev_inspect.ledger_sets(sd.outbox_db).items()}
    return {"devices": ing_inspect.device_stats(sd.ingest_db, generated=generated),
            "quarantine": {"by_reason": ing_inspect.quarantine_counts(sd.ingest_db),
                           "recent": ing_inspect.quarantine_rows(sd.ingest_db, limit=20)}}


def format_devices(doc: dict[str, Any], limit: int = 50) -> str:
    cols = ("device_id", "buffered", "oldest_seq", "newest_seq", "oldest_age_s", "bytes", "evicted")
    lines = ["".join(f"{c:>14}" for c in cols)]
    lines.extend("".join(f"{'-' if r.get(c) is None else r.get(c):>14}" for c in cols)
                 for r in doc["devices"][:limit])
    if len(doc["devices"]) > limit:
        lines.append(f"... {len(doc['devices']) - limit} more (use --json)")
    t = doc["totals"]
    lines.append(f"total buffered {t['buffered']} readings ({t['bytes']} bytes), evicted {t['evicted']}")
    return "\n".join(lines)


def format_device(doc: dict[str, Any]) -> str:
    cols = ("seq", "boot_epoch", "captured_at", "attempts", "bytes")
    lines = [f"{doc['device_id']}: {len(doc['buffered'])} buffered readings",
             "".join(f"{c:>16}" for c in cols)]
    lines.extend("".join(f"{r.get(c) if not isinstance(r.get(c), float) else round(r[c], 3):>16}"
                         for c in cols) for r in doc["buffered"])
    return "\n".join(lines)


def format_broker(doc: dict[str, Any]) -> str:
    cur = doc.get("current", {})
    keys = ("publish/messages/dropped", "store/messages/count", "store/messages/bytes", "clients/connected",
            "clients/disconnected", "publish/messages/received", "publish/messages/sent", "heap/current")
    lines = [f"broker $SYS (latest sample at {doc.get('sampled_at')}):"]
    lines += [f"  {k:<28} {cur.get(k, '-')}" for k in keys]
    lines.append(f"  dropped, summed over {doc['restarts_seen'] + 1} broker run(s): {doc['dropped']}")
    return "\n".join(lines)


def format_ingest(doc: dict[str, Any], limit: int = 50) -> str:
    lines = [f"{'device':<12}{'stored':>9}{'dups':>7}{'quar':>6}  missing seq ranges"]
    for d, r in sorted(doc["devices"].items())[:limit]:
        miss = r.get("missing_ranges", [])
        txt = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in miss[:6])
        txt += " ..." if len(miss) > 6 else ""
        counts = f"{r.get('stored', 0):>9}{r.get('duplicates', 0):>7}{r.get('quarantined', 0):>6}"
        lines.append(f"{d:<12}{counts}  {txt or '-'}")
    q = doc["quarantine"]["by_reason"]
    lines.append("quarantined: " + (", ".join(f"{k}: {v}" for k, v in q.items()) if q else "none"))
    return "\n".join(lines)
