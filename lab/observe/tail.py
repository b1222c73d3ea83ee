"""`ecgpipe tail [--device ID] [--count N] [--json] [--all]`: readings as they reach the broker.

Like `mosquitto_sub -v -t 'heartcheck/+/ecg'`, but decoded, one line per reading:

    2026-11-30T13:37:21.703Z hc-0001  boot 1  seq 42  captured 2026-11-30T13:37:20.500Z  1 s
        250 samples @ 250 Hz  HR 72  backlog

(on one line). HR is the mean heart rate over the chunk's R-peaks (devices.ecg_source's
detector), joined to the device's previous chunk when that one ends where this one starts (the
same boot, seq - 1): a 1-s chunk rarely holds two beats, two of them mostly do. "-" when there
are fewer than two beats. Flags shown: `backlog` (sent from the outbox
backlog, i.e. a re-send or a catch-up, not live), `signed`, the strip and chunk of a strip
recording, and a topic that names another device than the payload. A payload that does not
decode prints `MALFORMED <topic> <reason> (<n> bytes)` and tail goes on. With `show_all`, ingest's
confirmations (heartcheck/+/ack) and the status messages (the devices' retained status and Last
Will, ingest's service status) are shown too.

`--json` prints JSON Lines: one object per message with a "kind" (reading, malformed, ack,
status, notice, dropped) and times as Unix seconds.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TextIO

import numpy as np

from devices.ecg_source import find_r_peaks
from ecgcore.credentials import CredentialsError, SecretsDir
from lab.errors import ConfigError
from lab.observe.tap import Arrival, BrokerTap, Notice
from lab.stack.nats_stack import is_nats
from lab.stack.statedir import StateDir
from lab.timefmt import iso
from wire import WireError, decode_ack, decode_service_status, decode_status
from wire.codec import decode_fields
from wire.reading import FLAG_SIGNED
from wire.topics import (
    ECG_SUBSCRIPTION,
    INGEST_STATUS_FILTER,
    ROOT,
    STATUS_SUBSCRIPTION,
    ack_topic,
    ecg_topic,
    is_ingest_status,
    status_topic,
)

Doc = dict[str, Any]


def heart_rate(samples_mv: np.ndarray, sample_rate_hz: int) -> float | None:
    """Mean heart rate (bpm) over a chunk's R-peaks; None when it holds fewer than two beats."""
    if samples_mv.size < sample_rate_hz * 0.3:
        return None
    peaks = find_r_peaks(samples_mv, sample_rate_hz)
    if peaks.size < 2:
        return None
    mean_rr = float(peaks[-1] - peaks[0]) / (peaks.size - 1) / sample_rate_hz
    return 60.0 / mean_rr


class _Chunk(NamedTuple):
    boot_epoch: int
    seq: int
    end: float  # capture time just after its last sample
    sample_rate_hz: int
    mv: np.ndarray


class HeartWindow:
    """The ECG to measure a heart rate on: a chunk, after the device's previous chunk when the two
    are contiguous. Holds one chunk per device."""

    def __init__(self) -> None:
        self._last: dict[str, _Chunk] = {}

    def window(self, device: str, boot_epoch: int, seq: int, captured_at: float, rate: int,
               mv: np.ndarray) -> np.ndarray:
        prev = self._last.get(device)
        self._last[device] = _Chunk(boot_epoch, seq, captured_at + mv.size / rate, rate, mv)
        follows = prev is not None and (prev.boot_epoch, prev.seq + 1, prev.sample_rate_hz) == (
            boot_epoch, seq, rate) and abs(prev.end - captured_at) <= 1.5 / rate
        if prev is not None and follows:
            return np.concatenate([prev.mv, mv])
        return mv


def topics_for(device: str | None, *, show_all: bool) -> list[str]:
    """The subscriptions: every device's ECG, or one device's (its id checked)."""
    if device is None:
        extra = [f"{ROOT}/+/ack", STATUS_SUBSCRIPTION, INGEST_STATUS_FILTER]
        return [ECG_SUBSCRIPTION, *(extra if show_all else [])]
    try:
        topics = [ecg_topic(device)]
        if show_all:
            topics += [ack_topic(device), status_topic(device), INGEST_STATUS_FILTER]
    except WireError as exc:
        raise ConfigError(f"--device: {exc}") from exc
    return topics


def describe_reading(msg: Arrival, hearts: HeartWindow | None = None) -> Doc:
    r = decode_fields(msg.payload)
    mv = np.frombuffer(r.samples_be, dtype=">i2").astype(np.float64) * (r.gain_uv / 1000.0)
    if hearts is not None:
        mv = hearts.window(r.device_id, r.boot_epoch, r.seq, r.captured_at, r.sample_rate_hz, mv)
    hr = heart_rate(mv, r.sample_rate_hz)
    doc: Doc = {"kind": "reading", "arrived_at": round(msg.at, 3), "topic": msg.topic,
                "device_id": r.device_id, "boot_epoch": r.boot_epoch, "seq": r.seq,
                "captured_at": r.captured_at, "duration_s": r.n_samples / r.sample_rate_hz,
                "samples": r.n_samples, "sample_rate_hz": r.sample_rate_hz, "gain_uv": r.gain_uv,
                "backlog": r.backlog, "signed": bool(r.flags & FLAG_SIGNED), "strip_id": r.strip_id,
                "chunk": r.chunk, "chunks": r.chunks, "hr_bpm": None if hr is None else round(hr, 1),
                "hr_over_s": round(mv.size / r.sample_rate_hz, 3)}
    parts = msg.topic.split("/")
    if len(parts) == 3 and parts[1] != r.device_id:
        doc["topic_device"] = parts[1]
    return doc


def describe(msg: Arrival, hearts: HeartWindow | None = None) -> Doc:
    """One message as a document; a payload that does not decode is a "malformed" one."""
    kind = "status" if is_ingest_status(msg.topic) else msg.topic.rsplit("/", 1)[-1]
    try:
        if kind == "ecg":
            return describe_reading(msg, hearts)
        base: Doc = {"arrived_at": round(msg.at, 3), "topic": msg.topic}
        if kind == "ack":
            device, ranges = decode_ack(msg.payload)
            return {"kind": "ack", **base, "device_id": device, "ranges": [list(r) for r in ranges]}
        decoder = decode_service_status if is_ingest_status(msg.topic) else decode_status
        return {"kind": "status", **base, "status": decoder(msg.payload)}
    except WireError as exc:
        return {"kind": "malformed", "arrived_at": round(msg.at, 3), "topic": msg.topic,
                "reason": exc.reason, "error": str(exc), "bytes": len(msg.payload)}


def _flags(doc: Doc) -> str:
    flags = []
    if doc["backlog"]:
        flags.append("backlog")
    if doc["signed"]:
        flags.append("signed")
    if doc["chunks"] > 1 or doc["strip_id"]:
        flags.append(f"strip {doc['strip_id']} chunk {doc['chunk'] + 1}/{doc['chunks']}")
    if "topic_device" in doc:
        flags.append(f"TOPIC NAMES {doc['topic_device']}")
    return "  ".join(flags)


def format_doc(doc: Doc) -> str:
    """One document as a line of text (no newline)."""
    at = iso(doc["arrived_at"], ms=True)
    kind = doc["kind"]
    if kind == "reading":
        hr = "-" if doc["hr_bpm"] is None else f"{doc['hr_bpm']:.0f}"
        line = (f"{at} {doc['device_id']:<10} boot {doc['boot_epoch']}  seq {doc['seq']:<6} "
                f"captured {iso(doc['captured_at'], ms=True)}  {doc['duration_s']:g} s  "
                f"{doc['samples']} samples @ {doc['sample_rate_hz']} Hz  HR {hr:>3}")
        flags = _flags(doc)
        return f"{line}  {flags}" if flags else line
    if kind == "malformed":
        return f"{at} MALFORMED {doc['topic']} {doc['reason']}: {doc['error']} ({doc['bytes']} bytes)"
    if kind == "ack":
        ranges = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in doc["ranges"])
        return f"{at} {doc['device_id']:<10} ack   stored seq {ranges}"
    if kind == "status":
        st = doc["status"]
        who = st.get("device_id") or st.get("service") or "?"
        since = iso(st["at"], ms=True) if isinstance(st.get("at"), int | float) else "-"
        return f"{at} {who:<10} status {str(st.get('state', '?')).upper()} (since {since})"
    return f"{at} tail: {doc.get('text', '')}"


def run_tail(sd: StateDir, device: str | None, *, count: int | None, as_json: bool, out: TextIO,
             timeout_s: float | None = None, stop: Callable[[], bool] = lambda: False,
             show_all: bool = False) -> int:
    """Print messages as they arrive until `count` readings, `timeout_s`, stop() or Ctrl-C.
    ComponentError (one line) when the broker cannot be reached. Returns the exit code (0)."""
    if count is not None and count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    topics = topics_for(device, show_all=show_all)
    cfg = sd.config()
    try:
        creds = SecretsDir(sd.secrets_dir).client("observer", tls=cfg.tls) if cfg.secure else None
    except CredentialsError as exc:
        raise ConfigError(str(exc)) from exc
    tap = BrokerTap(cfg.host, cfg.port, topics, credentials=creds, mqtt311=is_nats(cfg))
    tap.start()
    emit = _emitter(out, as_json=as_json)
    try:
        _pump(tap, emit, count=count, timeout_s=timeout_s, stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        tap.stop()
    if tap.dropped:
        emit({"kind": "dropped", "arrived_at": round(time.time(), 3), "count": tap.dropped,
              "text": f"dropped {tap.dropped} messages: they arrived faster than this terminal took them"})
    return 0


def _emitter(out: TextIO, *, as_json: bool) -> Callable[[Doc], None]:
    def emit(doc: Doc) -> None:
        out.write((json.dumps(doc) if as_json else format_doc(doc)) + "\n")
        out.flush()

    return emit


def _pump(tap: BrokerTap, emit: Callable[[Doc], None], *, count: int | None, timeout_s: float | None,
          stop: Callable[[], bool]) -> None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    readings, hearts = 0, HeartWindow()
    while not stop():
        wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
        if wait <= 0:
            return
        try:
            item = tap.queue.get(timeout=wait)
        except queue.Empty:
            continue
        if isinstance(item, Notice):
            emit({"kind": "notice", "arrived_at": round(item.at, 3), "text": item.text})
            continue
        doc = describe(item, hearts)
        emit(doc)
        if doc["kind"] == "reading":
            readings += 1
            if count is not None and readings >= count:
                return
