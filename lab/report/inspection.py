"""`ecgpipe inspect ...`: what is buffered where. Reads only the state dir."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from devices import outbox_view as dev_inspect
from devices.profiles_file import read_profiles
from ingest import store_view as ing_inspect
from lab.checker.cost import BROKER_REDELIVERY, DEVICE_RESEND
from lab.errors import StateDirError
from lab.history import History, Key, Published, load_history
from lab.history.brokerstats import broker_stats
from lab.report.sources import require_sources
from lab.stack.statedir import StateDir
from lab.timefmt import ago, iso, when


def require_state_dir(sd: StateDir) -> None:
    if not sd.root.exists() or not (sd.exists() or sd.outbox_db.exists() or sd.ingest_db.exists()):
        raise StateDirError(f"no ecgpipe state in {sd.root}: run `ecgpipe up` first (or pass --state-dir)")


def inspect_devices(sd: StateDir, now: float) -> dict[str, Any]:
    """One row per device (outbox_view.device_summaries, plus oldest_age_s and also_stored:
    how many of its buffered readings the ingest store already holds, which the ledger and
    the report count as stored, not buffered)."""
    require_state_dir(sd)
    require_sources(sd, outbox=True)
    rows = dev_inspect.device_summaries(sd.outbox_db)
    buffered = {d: v["buffered"] for d, v in dev_inspect.ledger_sets(sd.outbox_db).items()}
    stored = ing_inspect.stored_seqs(sd.ingest_db)
    for r in rows:
        oldest = r.get("oldest_captured_at")
        r["oldest_age_s"] = round(now - oldest, 3) if oldest is not None else None
        dev = r["device_id"]
        r["also_stored"] = len(buffered.get(dev, set()) & stored.get(dev, set()))
    keys = ("buffered", "evicted", "bytes", "also_stored")
    return {"devices": rows, "totals": {key: sum(r[key] for r in rows) for key in keys}}


def inspect_device(sd: StateDir, device_id: str) -> dict[str, Any]:
    """The device's buffered readings (each with `stored`: the ingest store holds it too) and
    the patient behind it ("profile": fleet/profiles.json's entry; None for a state dir from an
    ecgpipe older than that file)."""
    require_state_dir(sd)
    require_sources(sd, outbox=True)
    known = [r["device_id"] for r in dev_inspect.device_summaries(sd.outbox_db)]
    if device_id not in known:
        example = f" (e.g. {known[0]})" if known else ""
        raise StateDirError(f"no device {device_id!r} in {sd.outbox_db}: it has {len(known)} "
                            f"device{'s' if len(known) != 1 else ''}{example}")
    rows = dev_inspect.buffered_readings(sd.outbox_db, device_id)
    stored = ing_inspect.stored_seqs(sd.ingest_db).get(device_id, set())
    for r in rows:
        r["stored"] = r["seq"] in stored
    profiles = read_profiles(sd.devices_json.parent)
    return {"device_id": device_id, "buffered": rows,
            "profile": None if profiles is None else profiles.get(device_id)}


def inspect_broker(sd: StateDir) -> dict[str, Any]:
    require_state_dir(sd)
    require_sources(sd, broker=True)
    return broker_stats(sd.root)


def inspect_ingest(sd: StateDir) -> dict[str, Any]:
    """Per device what the store holds; with duplicates, where their copies came from (from
    the history: "duplicates" = {"total", "by_origin", "resent_by_reason"})."""
    require_state_dir(sd)
    require_sources(sd, outbox=True, ingest=True)
    generated = {d: v["generated"] for d, v in dev_inspect.ledger_sets(sd.outbox_db).items()}
    devices = ing_inspect.device_stats(sd.ingest_db, generated=generated)
    doc = {"devices": devices,
           "quarantine": {"by_reason": ing_inspect.quarantine_counts(sd.ingest_db),
                          "recent": ing_inspect.quarantine_rows(sd.ingest_db, limit=20)}}
    total = sum(int(r.get("duplicates", 0)) for r in devices.values())
    if total:
        doc["duplicates"] = {"total": total, **duplicate_origins(load_history(sd.root))}
    return doc


def duplicate_origins(history: History) -> dict[str, dict[str, int]]:
    """Where each duplicate's extra copy came from, by lab/checker/cost.py's rule ("by_origin":
    device-resend when the device published that reading more than once, else
    broker-redelivery), and for device re-sends the reason of the device's last re-sent copy
    before the duplicate arrived ("resent_by_reason": devices/resend.py's words)."""
    resends: dict[Key, list[tuple[float, str]]] = defaultdict(list)
    copies: Counter[Key] = Counter()
    for ev in history.events(Published):
        copies[ev.key] += 1
        if ev.resend:
            resends[ev.key].append((ev.t, ev.resend))
    origins: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for d in history.duplicates:
        if copies[d.key] <= 1:
            origins[BROKER_REDELIVERY] += 1
            continue
        origins[DEVICE_RESEND] += 1
        before = [r for t, r in resends.get(d.key, []) if t <= d.t] or [r for _, r in resends.get(d.key, [])]
        reasons[before[-1] if before else "reboot"] += 1  # first copies of two boots
    return {"by_origin": dict(sorted(origins.items())), "resent_by_reason": dict(sorted(reasons.items()))}


# the words for a duplicate's origin and a re-send's reason (lab/checker/cost.py, devices/resend.py)
ORIGIN_WORDS = {DEVICE_RESEND: "re-sent by a device", BROKER_REDELIVERY:
                "delivered twice by the broker (ingest restarted before its PUBACK reached the broker)"}
RESEND_WORDS = {"no-puback": "with no PUBACK in time",
                "session-lost": "after the device's broker session was lost",
                "ingest-session-lost": "after ingest's session was lost", "gap": "when ingest reported a gap",
                "probe": "by the end-to-end probe", "refused": "after the broker refused it",
                "reboot": "after a reboot (its outbox sent again)"}
DUPLICATES_DOC = 'docs/architecture.md, "Re-sending only what may be lost"'


def duplicates_line(total: int, by_origin: dict[str, int], resent_by_reason: dict[str, int]) -> str:
    """One line that says what the duplicates are and where they came from."""
    copies = "copy" if total == 1 else "copies"
    head = (f"duplicates: {total} {copies} of readings already stored, discarded by ingest "
            "(idempotent: each reading is stored once)")
    parts = []
    for origin, n in by_origin.items():
        words = f"{n} {ORIGIN_WORDS.get(origin, origin)}"
        if origin == DEVICE_RESEND and resent_by_reason:
            why = (f"{v} {RESEND_WORDS.get(k, k)}" for k, v in resent_by_reason.items())
            words += " (" + ", ".join(why) + ")"
        parts.append(words)
    origin_txt = "; by origin: " + ", ".join(parts) if parts else ""
    return f"{head}{origin_txt}; see {DUPLICATES_DOC}"


def format_devices(doc: dict[str, Any], limit: int = 50) -> str:
    """The text of `inspect devices`; the oldest reading's age from the doc's oldest_age_s."""
    cols = ("device_id", "buffered", "also_stored", "oldest_seq", "newest_seq", "oldest_age", "bytes",
            "evicted")
    lines = ["".join(f"{c:>13}" for c in cols)]
    for r in doc["devices"][:limit]:
        age = r.get("oldest_age_s")
        cells = {**r, "oldest_age": None if age is None else ago(age)}
        lines.append("".join(f"{'-' if cells.get(c) is None else cells.get(c):>13}" for c in cols))
    if len(doc["devices"]) > limit:
        lines.append(f"... {len(doc['devices']) - limit} more (use --json)")
    t = doc["totals"]
    lines.append(f"total buffered {t['buffered']} readings ({t['bytes']} bytes), evicted {t['evicted']}")
    if t.get("also_stored"):
        lines.append(f"  {t['also_stored']} of them already stored by ingest: the device stopped before "
                     "it saw the confirmation\n  (or it is on its way); report counts them as stored")
    return "\n".join(lines)


def format_profile(profile: dict[str, Any] | None) -> str:
    """The patient behind a device, in one line."""
    if profile is None:
        return "profile unknown (state dir from an older ecgpipe)"
    text = (f"patient: heart rate {profile.get('hr_bpm', 0):g} bpm (HRV {profile.get('hrv', 0):g} bpm), "
            f"electrode noise {profile.get('noise', 0):g} mV, signal seed {profile.get('seed')}")
    if profile.get("cohort"):
        text += f", cohort {profile['cohort']}"
    rate = profile.get("sample_rate_hz")
    if profile.get("recording") == "strip":
        text += (f"; records strips of {profile.get('strip_seconds', 0):g} s, "
                 f"{profile.get('strips_per_day')} a day, at {rate} Hz")
    else:
        text += f"; records continuously, {profile.get('chunk_seconds', 0):g}-s chunks at {rate} Hz"
    return text


def format_device(doc: dict[str, Any], now: float) -> str:
    """The text of `inspect device`: the patient, then the buffered readings (times in ISO UTC,
    ages from `now`)."""
    rows = doc["buffered"]
    also = sum(1 for r in rows if r.get("stored"))
    lines = [f"{doc['device_id']}: {format_profile(doc.get('profile'))}",
             f"{doc['device_id']}: {len(rows)} buffered readings"
             + (f" ({also} already stored by ingest; report counts them as stored)" if also else ""),
             (f"{'seq':>8}{'boot':>6}  {'captured_at':<25}{'age':>13}{'attempts':>10}  "
              f"{'last sent':<16}{'bytes':>7}  stored")]
    for r in rows:
        last = "never" if r.get("last_sent_at") is None else f"{ago(now - r['last_sent_at'])} ago"
        lines.append(f"{r['seq']:>8}{r['boot_epoch']:>6}  {iso(r['captured_at'], ms=True):<25}"
                     f"{ago(now - r['captured_at']):>13}{r['attempts']:>10}  {last:<16}{r['bytes']:>7}"
                     f"  {'yes' if r.get('stored') else '-'}")
    return "\n".join(lines)


def format_broker(doc: dict[str, Any], now: float) -> str:
    """The text of `inspect broker`; "sampled at" as ISO UTC and how long ago (`now`)."""
    cur = doc.get("current", {})
    keys = ("publish/messages/dropped", "store/messages/count", "store/messages/bytes", "clients/connected",
            "clients/disconnected", "publish/messages/received", "publish/messages/sent", "heap/current")
    at = doc.get("sampled_at")
    lines = [f"broker $SYS (latest sample at {when(at, now) if at is not None else '- (none yet)'}):"]
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
    dup = doc.get("duplicates")
    if dup:
        lines.append(duplicates_line(dup["total"], dup["by_origin"], dup["resent_by_reason"]))
    q = doc["quarantine"]["by_reason"]
    lines.append("quarantined: " + (", ".join(f"{k}: {v}" for k, v in q.items()) if q else "none"))
    return "\n".join(lines)
