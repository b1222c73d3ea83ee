"""`ecgpipe inspect reading DEVICE SEQ`: where one reading is now, its times, and its ECG.

Where, from the state dir's files only (so it works after `down` and on a copy):

    buffered         in the device's outbox (fleet/outbox.sqlite), not stored by ingest
    stored           in the ingest store (ingest/ingest.sqlite), gone from the outbox
    stored+buffered  in both: the device had not seen the confirmation its delivery mode waits
                     for (it stopped first, or the confirmation is on its way); the ledger and
                     the report count it as stored
    evicted          in neither, in the outbox's eviction log (with its reason)
    lost             generated (seq < the device's next_seq) but in none of the three; the
                     ledger counts it as lost, and the checker's cause is looked up in the history
    never-generated  seq >= next_seq: the device has not recorded it (yet)

The samples (`--png` on ECG paper, `--csv` as `t_s,ecg_mV`) come from wherever the reading is:
the store (ingest.store_view.reading_samples) or the outbox row's payload (wire.codec). A
reading with no samples anywhere makes --png/--csv fail with NoSamplesError, before any file
is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.errors import DeviceError
from devices.outbox_reading import OutboxReading, device_ids, outbox_reading
from ecgcore.files import read_json
from ingest import store_view
from ingest.errors import IngestError
from ingest.store_reading import StoredReading, store_device_ids, stored_reading
from lab.errors import ConfigError, LabError, StateDirError
from lab.report.ecgpaper import draw_strip
from lab.report.inspection import require_state_dir
from lab.report.reading_marks import annotate
from lab.stack.statedir import StateDir
from lab.timefmt import ago, iso, when

# what the outbox waits for before it lets go of a reading, per delivery mode
CONFIRMATION = {"broker-ack": "the broker's PUBACK", "end-to-end": "ingest's ack",
                "fire-and-forget": "paho's acceptance of the publish"}


class NoSamplesError(LabError):
    """--png/--csv of a reading whose samples are nowhere (evicted, lost, never generated)."""


def inspect_reading(sd: StateDir, device_id: str, seq: int, *, now: float,
                    png: Path | None = None, csv: Path | None = None) -> dict[str, Any]:
    """Where reading `seq` of `device_id` is now and its times; with png/csv, its ECG drawn
    on ECG paper and/or written as samples. `now` is only recorded in the document."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ConfigError(f"SEQ must be a whole number 0 or more, not {seq!r}")
    require_state_dir(sd)
    try:
        ob = outbox_reading(sd.outbox_db, device_id, seq)
        st = stored_reading(sd.ingest_db, device_id, seq)
    except (DeviceError, IngestError) as exc:
        raise StateDirError(str(exc)) from exc
    if not ob.known and st is None:
        raise StateDirError(_unknown_device(sd, device_id))
    stack = read_json(sd.stack_file)
    delivery = stack.get("delivery") if isinstance(stack, dict) else None
    doc = _document(ob, st, now, delivery if isinstance(delivery, str) else None)
    if doc["where"] == "lost":
        doc["lost"] = _checker_outcome(sd, device_id, seq)
    if png is not None or csv is not None:
        mv, rate = _samples(sd, ob, st, doc)
        doc["samples"]["n"] = int(mv.size)
        if csv is not None:
            doc["csv"] = str(write_csv(mv, rate, csv))
        if png is not None:
            marks = annotate(sd, device_id, seq, doc["times"]["captured_at"], mv, rate)
            doc["measured"] = marks.as_dict()
            title = "\n".join([_png_title(doc), *marks.lines()])
            doc["png"] = str(draw_strip(mv, rate, png, title=title, head_mm=26.0,
                                        row_seconds=_row_seconds(mv.size / rate), beats=marks.beats))
    return doc


def _unknown_device(sd: StateDir, device_id: str) -> str:
    try:
        ids = sorted(set(device_ids(sd.outbox_db)) | set(store_device_ids(sd.ingest_db)))
    except (DeviceError, IngestError):
        ids = []
    if not ids:
        return f"no device {device_id!r} in {sd.root}: it has no devices yet"
    return (f"no device {device_id!r} in {sd.root}: it has {len(ids)} device"
            f"{'s' if len(ids) != 1 else ''} ({ids[0]}{f' .. {ids[-1]}' if len(ids) > 1 else ''})")


def _where(ob: OutboxReading, st: StoredReading | None) -> str:
    if st is not None:
        return "stored+buffered" if ob.row is not None else "stored"
    if ob.row is not None:
        return "buffered"
    if ob.eviction is not None:
        return "evicted"
    return "lost" if ob.generated else "never-generated"


def _document(ob: OutboxReading, st: StoredReading | None, now: float,
              delivery: str | None) -> dict[str, Any]:
    row, ev = ob.row, ob.eviction
    captured = st.captured_at if st else row.captured_at if row else ev.captured_at if ev else None
    duration = st.duration_s if st else None
    rate = st.sample_rate_hz if st else None
    if st is None and row is not None:
        try:
            reading = row.reading()
            duration, rate = reading.duration_s, reading.sample_rate_hz
        except DeviceError:  # a payload that does not decode: its length is unknown here,
            pass  # and --png/--csv say why
    stored_at = st.stored_at if st else None
    latency = None if stored_at is None or captured is None else round(stored_at - captured, 6)
    return {
        "device_id": ob.device_id, "seq": ob.seq, "where": _where(ob, st), "delivery": delivery,
        "at": now,
        "device": {"known": ob.known, "boot_epoch": ob.boot_epoch, "next_seq": ob.next_seq},
        "outbox": None if row is None else {
            "boot_epoch": row.boot_epoch, "captured_at": row.captured_at,
            "enqueued_at": row.enqueued_at, "attempts": row.attempts,
            "last_sent_at": row.last_sent_at, "bytes": len(row.payload)},
        "stored": None if st is None else {
            "boot_epoch": st.boot_epoch, "captured_at": st.captured_at,
            "received_at": st.received_at, "stored_at": st.stored_at, "backlog": st.backlog,
            "duplicates": len(st.duplicates_received_at),
            "duplicates_received_at": list(st.duplicates_received_at),
            "same_seq_rows": st.same_seq_rows},
        "eviction": None if ev is None else {
            "boot_epoch": ev.boot_epoch, "captured_at": ev.captured_at, "reason": ev.reason,
            "evicted_at": ev.evicted_at},
        "lost": None,
        "times": {"captured_at": captured, "duration_s": duration,
                  "enqueued_at": row.enqueued_at if row else None, "stored_at": stored_at,
                  "capture_to_store_s": latency,
                  "capture_end_to_store_s": (None if latency is None or duration is None
                                             else round(latency - duration, 6))},
        "samples": {"source": "store" if st else "outbox" if row else None, "n": None,
                    "sample_rate_hz": rate},
        "png": None, "csv": None,
    }


def _checker_outcome(sd: StateDir, device_id: str, seq: int) -> dict[str, Any]:
    """What the checker says of a lost reading, from the history (cause and fault window);
    {"cause": None} when the history does not name it."""
    from lab.checker import check
    from lab.history import load_history

    try:
        result = check(load_history(sd.root))
    except (LabError, DeviceError, IngestError, ValueError):  # an unreadable or partial history
        # only costs the cause, not the answer
        return {"cause": None, "window": None, "outcome": None}
    for key, out in result.outcomes.items():
        if key[0] == device_id and key[2] == seq:
            return {"cause": out.cause, "window": out.window, "outcome": out.outcome}
    return {"cause": None, "window": None, "outcome": None}


def _samples(sd: StateDir, ob: OutboxReading, st: StoredReading | None,
             doc: dict[str, Any]) -> tuple[npt.NDArray[np.float64], int]:
    """The reading's ECG in mV and its sample rate, from the store, else the outbox row."""
    if st is not None:
        try:
            got = store_view.reading_samples(sd.ingest_db, st.device_id, st.boot_epoch, st.seq)
        except IngestError as exc:
            raise StateDirError(str(exc)) from exc
        if got is not None:
            return got.millivolts(), got.sample_rate_hz
    if ob.row is not None:
        try:
            reading = ob.row.reading()
        except DeviceError as exc:
            raise StateDirError(f"{ob.device_id} seq {ob.seq}: {exc}") from exc
        return reading.millivolts().astype(np.float64), reading.sample_rate_hz
    raise NoSamplesError(f"{ob.device_id} seq {ob.seq} has no samples to draw or write: "
                         f"{explain(doc)}")


def write_csv(millivolts: npt.NDArray[np.float64], sample_rate_hz: int, path: Path) -> Path:
    """One row per sample: `t_s` (seconds from the first sample) and `ecg_mV`."""
    t = np.arange(millivolts.size) / sample_rate_hz
    lines = ["t_s,ecg_mV", *(f"{a:.6f},{b:.6f}" for a, b in zip(t, millivolts, strict=True))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _row_seconds(duration_s: float) -> float:
    """Rows of 10 s (250 mm) as on a 12-lead sheet; a shorter reading gets a shorter row, but
    at least 5 s (125 mm), so the title fits above it."""
    return min(10.0, max(5.0, math.ceil(duration_s)))


def _png_title(doc: dict[str, Any]) -> str:
    t = doc["times"]
    head = f"{doc['device_id']} seq {doc['seq']}: {_WHERE_SHORT[doc['where']]}"
    line = f"captured {iso(t['captured_at'], ms=True)}"
    if t["stored_at"] is not None:
        line += f", stored {iso(t['stored_at'], ms=True)} ({ago(t['capture_to_store_s'])} later)"
    return f"{head}\n{line}"


_WHERE_SHORT = {"buffered": "in the device's outbox (buffered)", "stored": "stored by ingest",
                "stored+buffered": "stored by ingest, still in the device's outbox",
                "evicted": "evicted from the outbox", "lost": "lost",
                "never-generated": "never generated"}


def explain(doc: dict[str, Any]) -> str:
    """One sentence: where the reading is and why."""
    where, dev = doc["where"], doc["device_id"]
    confirmation = CONFIRMATION.get(doc.get("delivery") or "", "the confirmation it waits for")
    if where == "buffered":
        return f"in {dev}'s outbox (buffered): not stored by ingest yet"
    if where == "stored":
        return "stored by ingest; the device has let go of it"
    if where == "stored+buffered":
        return (f"stored by ingest, and still in {dev}'s outbox: the device had not seen "
                f"{confirmation} when it stopped (or it is on its way); the report counts it as stored")
    if where == "evicted":
        return (f"evicted from {dev}'s outbox before it was stored "
                f"({doc['eviction']['reason']}, see the outbox's eviction log)")
    n = doc["device"]["next_seq"]
    if where == "never-generated":
        return (f"never generated: {dev} has generated seqs 0..{n - 1} so far (next_seq {n})"
                if n else f"never generated: {dev} has generated no reading yet")
    lost = doc.get("lost") or {}
    cause = (f"the checker's cause: {lost['cause']}" + (f" (fault window {lost['window']})"
                                                         if lost.get("window") else "")
             if lost.get("cause") else "the history names no cause")
    return (f"lost: generated (seq < next_seq {n}) but not in the outbox, the store nor the "
            f"eviction log; the ledger counts it as lost; {cause}")


def _copies(n: int) -> str:
    return f"{n} cop{'y' if n == 1 else 'ies'}"


def format_reading(doc: dict[str, Any], now: float) -> str:
    """The text of `inspect reading`; times as ISO UTC with how long ago (`now`)."""
    t, ob, st, ev = doc["times"], doc["outbox"], doc["stored"], doc["eviction"]
    boot = (st or ob or ev or {}).get("boot_epoch")
    lines = [f"{doc['device_id']} seq {doc['seq']}" + (f" (boot {boot})" if boot else "")
             + f": {explain(doc)}"]
    if t["captured_at"] is not None:
        length = ("" if t["duration_s"] is None else
                  f", {t['duration_s']:g} s of ECG at {doc['samples']['sample_rate_hz']} Hz")
        lines.append(f"  captured   {when(t['captured_at'], now)}{length}")
    if ob is not None:
        sent = (f"{_copies(ob['attempts'])} sent, the last {when(ob['last_sent_at'], now)}"
                if ob["last_sent_at"] is not None else "never sent")
        lines.append(f"  outbox     enqueued {when(ob['enqueued_at'], now)}; {sent}")
    if st is not None:
        lines.append(f"  stored     {when(st['stored_at'], now)} (sent by boot {st['boot_epoch']}"
                     f"{', from the backlog' if st['backlog'] else ''})")
        if t["capture_to_store_s"] is not None:
            end = t["capture_end_to_store_s"]
            lines.append(f"  latency    capture->store {ago(t['capture_to_store_s'])}"
                         + ("" if end is None else f" (capture end->store {ago(end)})"))
        if st["duplicates"]:
            lines.append(f"  duplicates {_copies(st['duplicates'])} more received, discarded by "
                         f"ingest (idempotent); the last {when(st['duplicates_received_at'][-1], now)}")
    if ev is not None:
        lines.append(f"  evicted    {when(ev['evicted_at'], now)}: {ev['reason']}")
    if doc.get("measured"):
        m = doc["measured"]
        vals = ", ".join(f"{k.removesuffix('_ms').removesuffix('_bpm').upper()} {m[k]:.0f}"
                         f"{' bpm' if k == 'hr_bpm' else ' ms'}"
                         for k in ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms") if m.get(k) is not None)
        around = f", with {m['context_s']:g} s stored around it" if m.get("context_s") else ""
        lines.append(f"  measured   {vals or 'nothing measurable'} ({m['beats']} beats in it{around})")
        lines.append(f"  rhythm     {m.get('rhythm') or 'unknown'} (the generator's ground truth)"
                     + (f", artifacts: {', '.join(m['artifacts'])}" if m.get("artifacts") else ""))
    lines.extend(f"  {kind:<10} {doc[kind]}" for kind in ("png", "csv") if doc.get(kind))
    return "\n".join(lines)
