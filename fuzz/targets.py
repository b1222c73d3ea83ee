"""The fuzz targets: one function per parser of network input, each taking raw bytes.

A target returns normally for input it accepts or refuses the documented way, and raises
anything else: that is a crash.

    reading    wire.codec.decode_fields: a reading or a WireError
    validate   ingest.validate.validate on the ECG topic and on a topic made from the input's
               first bytes: an Accepted or a Quarantined, never an exception (its contract);
               and once more with keys, on the topic of the device the input's header names,
               that device's key among them (FUZZ_ROOT), so the signature checks run: accepted
               then only if the input is signed with that key (checked here on its own)
    reading_crc, validate_crc
               the same with a correct CRC-32 appended to the input: random bytes almost never
               pass the checksum, so these reach the field checks behind it
    ack        wire.acks.decode_ack: (device id, ranges) or a WireError; ranges are ordered pairs
    status     wire.status.decode_status and decode_service_status: a dict or a WireError
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from collections.abc import Callable, Mapping

from ingest.validate import Accepted, Quarantined, validate
from wire import WireError, ecg_topic, reading_key
from wire.acks import decode_ack
from wire.codec import decode_fields
from wire.reading import check_device_id
from wire.status import decode_service_status, decode_status

RECEIVED_AT = 1_700_000_100.0
# Every device's root in the keyed validation; the signed seeds in tests/fuzz_corpus/validate*/
# are signed with reading_key(FUZZ_ROOT, their device), so the fuzzer starts from accepted ones.
FUZZ_ROOT = bytes(range(32))


class ContractError(AssertionError):
    """A target's contract broken without an exception of its own (a wrong kind of result)."""


def reading(data: bytes) -> None:
    try:
        fields = decode_fields(data)
    except WireError:
        return
    if fields.n_samples * 2 != len(fields.samples_be):
        raise ContractError(f"{fields.n_samples} samples in {len(fields.samples_be)} bytes")


def _validated(topic: str, data: bytes, keys: Mapping[str, bytes] | None = None) -> Accepted | Quarantined:
    got = validate(topic, data, RECEIVED_AT, keys)
    if not isinstance(got, Accepted | Quarantined):
        raise ContractError(f"validate returned {type(got).__name__}")
    if isinstance(got, Quarantined) and got.reason == "internal-error":
        raise ContractError(f"internal-error on input: {got.detail}")
    return got


def _header_device(data: bytes) -> str:
    """The device id the input's header names (its length at byte 4), if it is a valid id."""
    try:
        return check_device_id(data[5 : 5 + data[4]].decode("ascii"))
    except (IndexError, UnicodeDecodeError, WireError):
        return "hc-0001"


def validate_message(data: bytes) -> None:
    topic_len = data[0] % 48 if data else 0
    topics = ["heartcheck/hc-0001/ecg", data[1 : 1 + topic_len].decode("utf-8", "replace")]
    for topic in topics:
        _validated(topic, data)
    device = _header_device(data)
    key = reading_key(FUZZ_ROOT, device)
    got = _validated(ecg_topic(device), data, {device: key})
    if isinstance(got, Accepted):
        sig = got.fields.signature
        want = hmac.new(key, data[: len(data) - 4 - len(sig)], hashlib.sha256).digest()
        if not hmac.compare_digest(sig, want):
            raise ContractError(f"accepted with keys, but not signed with {device!r}'s key")


def ack(data: bytes) -> None:
    try:
        device, ranges = decode_ack(data)
    except WireError:
        return
    if not isinstance(device, str) or any(not (0 <= a <= b) for a, b in ranges):
        raise ContractError(f"ack decoded to {device!r}, {ranges!r}")


def status(data: bytes) -> None:
    for decode in (decode_status, decode_service_status):
        try:
            doc = decode(data)
        except WireError:
            continue
        if not isinstance(doc, dict):
            raise ContractError(f"{decode.__name__} returned {type(doc).__name__}")


def _with_crc(data: bytes) -> bytes:
    return data + zlib.crc32(data).to_bytes(4, "big")


def reading_crc(data: bytes) -> None:
    reading(_with_crc(data))


def validate_crc(data: bytes) -> None:
    validate_message(_with_crc(data))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "reading": reading, "validate": validate_message, "ack": ack, "status": status,
    "reading_crc": reading_crc, "validate_crc": validate_crc,
}
