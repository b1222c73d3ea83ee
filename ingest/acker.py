"""End-to-end acks: pure, from a committed BatchResult to one message per device.

    build_acks(result) -> [AckMessage(topic="heartcheck/<id>/ack", payload=wire.encode_ack(...))]

Each message names, as inclusive seq ranges, every seq of that device in the batch that is
durably stored: the newly stored ones and the duplicates (a duplicate was stored by an
earlier commit, and its device evidently did not get, or did not act on, the earlier ack).
Seqs never repeat for a device across boots, so the boot epoch is not needed in an ack.
In a secure stack (`--secrets-dir`), each ack is signed with its device's ack key, derived from
the device's provisioned secret (wire.acks: a device acts on signed acks only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ingest.store import BatchResult
from wire import ack_topic, encode_ack, seqs_to_ranges


@dataclass(frozen=True)
class AckMessage:
    device_id: str
    topic: str
    payload: bytes
    ranges: tuple[tuple[int, int], ...]


def build_acks(result: BatchResult,
               ack_keys: Callable[[str], bytes | None] | None = None) -> list[AckMessage]:
    """One ack per device that has anything stored or duplicated in this batch, sorted by id;
    signed with each device's ack key when `ack_keys` gives one (ingest.keys)."""
    out: list[AckMessage] = []
    for device_id, seqs in result.confirmed_by_device().items():
        ranges = tuple(seqs_to_ranges(seqs))
        key = None if ack_keys is None else ack_keys(device_id)
        payload = encode_ack(device_id, ranges, key)
        out.append(AckMessage(device_id, ack_topic(device_id), payload, ranges))
    return out
