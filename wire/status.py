"""Retained device status on heartcheck/<id>/status (also the Last Will).

    {"v": 1, "device_id": "hc-0001", "state": "online", "boot_epoch": 3, "at": 1700000000.0}
"""

from __future__ import annotations

import json

from wire.errors import FieldError
from wire.reading import check_device_id

STATES = ("online", "offline")


def encode_status(device_id: str, state: str, boot_epoch: int, at: float) -> bytes:
    if state not in STATES:
        raise FieldError(f"status state {state!r} not in {STATES}")
    doc = {"v": 1, "device_id": check_device_id(device_id), "state": state,
           "boot_epoch": boot_epoch, "at": round(at, 3)}
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_status(payload: bytes) -> dict[str, object]:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FieldError(f"status is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("state") not in STATES:
        raise FieldError("status has no valid state")
    check_device_id(str(doc.get("device_id", "")))
    return doc
