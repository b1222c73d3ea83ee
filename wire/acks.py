"""End-to-end confirmations: ingest → device on heartcheck/<id>/ack.

JSON, because it is small and a human with mosquitto_sub should read it:
    {"v": 1, "device_id": "hc-0001", "ranges": [[0, 41], [43, 43]]}
Ranges are inclusive seq ranges that are durably stored (committed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from wire.errors import FieldError, VersionError
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


def encode_ack(device_id: str, ranges: Iterable[tuple[int, int]]) -> bytes:
    rs = [[int(a), int(b)] for a, b in ranges]
    doc = {"v": ACK_VERSION, "device_id": check_device_id(device_id), "ranges": rs}
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_ack(payload: bytes) -> tuple[str, list[tuple[int, int]]]:
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
    return check_device_id(doc.get("device_id", "")), out
