"""Retained device status on heartcheck/<id>/status (also the Last Will).

    {"v": 1, "device_id": "hc-0001", "state": "online", "boot_epoch": 3, "at": 1700000000.0}
"""

from __future__ import annotations

import hashlib
import hmac
import json

from wire.errors import FieldError, SignatureError
from wire.reading import check_device_id

STATES = ("online", "offline")


def encode_status(device_id: str, state: str, boot_epoch: int, at: float) -> bytes:
    _check_state(state)
    return _json_dumps({"v": 1, "device_id": check_device_id(device_id), "state": state,
                        "boot_epoch": boot_epoch, "at": round(at, 3)})


def _document(payload: bytes, what: str) -> object:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting: RecursionError
        raise FieldError(f"{what} is not JSON: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _json_dumps(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _check_state(state: str) -> None:
    if state not in STATES:
        raise FieldError(f"status state {state!r} not in {STATES}")


def decode_status(payload: bytes) -> dict[str, object]:
    doc = _document(payload, "status")
    if not isinstance(doc, dict) or doc.get("state") not in STATES:
        raise FieldError("status has no valid state")
    check_device_id(str(doc.get("device_id", "")))
    return doc


# --- the ingest service's retained status ---------------------------------------------------
#
# On INGEST_STATUS_TOPIC (wire/topics.py), retained, QoS 1; its Last Will says "offline":
#
#     {"v": 1, "service": "ingest", "state": "online", "boot": "3f2a9c01b7e4",
#      "session": "9d1e0c44a2b8", "session_present": false, "at": 1700000000.0}
#
# `session` names the ingest service's broker session (its subscription and queue). It changes
# exactly when the broker did not have the session any more (session_present false on connect:
# a first connect, a broker restart without persistence, an expired session): whatever was
# published for ingest before then and not yet delivered is gone. It survives ingest restarts
# while the broker keeps the session. `boot` changes on every ingest process start.

SERVICE_VERSION = 1


def status_key(master: bytes) -> bytes:
    """The key ingest's status is signed with, derived from the stack's master secret (the one
    wire.acks.ack_key derives each device's ack key from)."""
    return hmac.new(master, b"ecgpipe-ingest-status", hashlib.sha256).digest()


def encode_service_status(state: str, boot: str, session: str, session_present: bool,
                          at: float, key: bytes | None = None) -> bytes:
    """The status; with `key`, signed: "sig" is the hex HMAC-SHA256 of the unsigned bytes."""
    _check_state(state)
    doc: dict[str, object] = {"v": SERVICE_VERSION, "service": "ingest", "state": state,
                              "boot": str(boot), "session": str(session),
                              "session_present": bool(session_present), "at": round(at, 3)}
    if key is None:
        return _json_dumps(doc)
    doc["sig"] = hmac.new(key, _json_dumps(doc), hashlib.sha256).hexdigest()
    return _json_dumps(doc)


def decode_service_status(payload: bytes, key: bytes | None = None) -> dict[str, object]:
    """The status document; FieldError when it is not one (wrong version, state or fields).
    With `key`, it must be signed with it (SignatureError): a forged "offline" would pause the
    devices, a forged new session make them re-send."""
    doc = _document(payload, "service status")
    if not isinstance(doc, dict) or doc.get("v") != SERVICE_VERSION:
        raise FieldError("service status has no supported version")
    if doc.get("state") not in STATES:
        raise FieldError("service status has no valid state")
    if not isinstance(doc.get("session"), str) or not isinstance(doc.get("boot"), str):
        raise FieldError("service status names no boot and session")
    if key is not None:
        sig, at = doc.get("sig"), doc.get("at")
        if not isinstance(sig, str):
            raise SignatureError("unsigned service status (signed ones only)")
        if not isinstance(at, int | float) or isinstance(at, bool):
            raise FieldError("service status has no time")
        want = encode_service_status(str(doc["state"]), str(doc["boot"]), str(doc["session"]),
                                     bool(doc.get("session_present")), float(at), key)
        if not hmac.compare_digest(want, bytes(payload)):
            raise SignatureError("service status signature does not match")
    return doc
