"""End-to-end confirmations: ingest → device on heartcheck/<id>/ack.

JSON, because it is small and a human with mosquitto_sub should read it:
    {"v": 1, "device_id": "hc-0001", "ranges": [[0, 41], [43, 43]]}
Ranges are inclusive seq ranges that are durably stored (committed).

Signed (the lab's default): the same document plus
    "sig": hex HMAC-SHA256(device's ack key, the unsigned document's exact bytes above)
An ack makes a device delete readings from its outbox, so a device that holds an ack key
accepts only acks signed with it: a forged confirmation (anyone who can publish on the ack
topic) is refused as a SignatureError, never acted on. The device's ack key is
ack_key(master, device_id): HMAC-SHA256 of the device id under the stack's master secret
(DIR/secrets/ack.key), so ingest can sign for every device and each device can check only
its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

from wire.errors import FieldError, SignatureError, VersionError
from wire.reading import check_device_id

ACK_VERSION = 1


def seqs_to_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Collapse seq numbers into sorted inclusive ranges."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def ack_key(master: bytes, device_id: str) -> bytes:
    """The key one device's acks are signed with, derived from the stack's master secret."""
    return hmac.new(master, b"ecgpipe-ack:" + device_id.encode(), hashlib.sha256).digest()


def _dumps(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _signature(key: bytes, unsigned: bytes) -> str:
    return hmac.new(key, unsigned, hashlib.sha256).hexdigest()


def encode_ack(device_id: str, ranges: Iterable[tuple[int, int]], key: bytes | None = None) -> bytes:
    """The ack; signed when `key` (the device's ack key) is given."""
    rs = [[int(a), int(b)] for a, b in ranges]
    doc: dict[str, object] = {"v": ACK_VERSION, "device_id": check_device_id(device_id), "ranges": rs}
    if key is None:
        return _dumps(doc)
    doc["sig"] = _signature(key, _dumps(doc))
    return _dumps(doc)


def decode_ack(payload: bytes, key: bytes | None = None) -> tuple[str, list[tuple[int, int]]]:
    """(device id, ranges). With `key`, the ack must carry a matching signature
    (SignatureError otherwise); without, a signature is not checked."""
    device_id, ranges, sig = _parse_ack(payload)
    if key is not None:
        if sig is None:
            raise SignatureError("unsigned ack (this device accepts signed acks only)")
        want = _signature(key, encode_ack(device_id, ranges))
        if not hmac.compare_digest(want, sig):
            raise SignatureError("ack signature does not match")
    return device_id, ranges


def _parse_ack(payload: bytes) -> tuple[str, list[tuple[int, int]], str | None]:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting: RecursionError
        raise FieldError(f"ack is not JSON: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if not isinstance(doc, dict) or doc.get("v") != ACK_VERSION:
        raise VersionError(f"ack version {doc.get('v') if isinstance(doc, dict) else None!r}")
    ranges = doc.get("ranges")
    if not isinstance(ranges, list):
        raise FieldError("ack has no ranges list")
    out: list[tuple[int, int]] = []
    for r in ranges:
        if (
            not isinstance(r, list)
            or len(r) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in r)
            or not 0 <= r[0] <= r[1]
        ):
            raise FieldError(f"bad ack range {r!r}")
        out.append((r[0], r[1]))
    sig = doc.get("sig")
    if sig is not None and not isinstance(sig, str):
        raise FieldError("ack signature is not a string")
    return check_device_id(doc.get("device_id", "")), out, sig
