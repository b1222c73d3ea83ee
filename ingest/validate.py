"""Validation of one received message: pure, no I/O, and it never raises.

    validate(topic, payload, received_at, keys=None) -> Accepted | Quarantined

A message is accepted only if its topic is `heartcheck/<device_id>/ecg`, its payload decodes
as a wire-format reading (wire.decode_reading: CRC, lengths, fields), the device id in the
topic equals the one in the payload, and the chunk is plausible. With `keys` (device id ->
that device's reading key, wire.reading_key), it must also be signed with its device's key
(wire.verify_signature); with keys=None (the insecure lab) a signature is not checked.
Everything else becomes a Quarantined value carrying the raw bytes, one reason from REASONS
and a human-readable detail.

Reasons:
    oversize             payload larger than wire.MAX_PAYLOAD_BYTES (checked before decoding)
    bad-topic            topic is not heartcheck/<valid device id>/ecg
    truncated, bad-magic, unsupported-version, bad-length, bad-checksum, bad-field
                         the WireError's own .reason (see wire/errors.py)
    device-mismatch      topic device id != payload device id
    unknown-device       (with keys) no key for the device: it was never provisioned
    unsigned             (with keys) the reading carries no signature
    bad-signature        (with keys) the signature is not its device's HMAC of the payload:
                         forged, altered after signing, or signed with another device's key
    bad-field            also: a chunk longer than MAX_CHUNK_SECONDS (n_samples / sample_rate_hz)
    implausible-time     a chunk that ends more than MAX_FUTURE_S after it was received: a
                         device cannot send what it has not captured yet (forged, or a
                         device clock far off; the clocks are the service's and the device's)
    internal-error       an unexpected exception while validating (a bug, never bad input);
                         the service also uses it when storing one message fails
    conflict             (set by the store, not here) a valid reading whose key is already
                         stored with other content: the first is kept (ingest/store.py)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from wire import MAX_PAYLOAD_BYTES, Reading, WireError, device_from_topic, verify_signature
from wire.codec import ReadingFields, decode_fields

# A 30-s strip fits wire.reading.MAX_SAMPLES at 1 kHz; a minute of ECG in one chunk is absurd
# for this product (continuous mode sends 1-s chunks) and would distort latency and gap maths.
MAX_CHUNK_SECONDS = 60.0
# A device's clock may run ahead of the service's; five minutes is far beyond NTP-synced phones
# and handhelds, and far short of the decades a forger may claim.
MAX_FUTURE_S = 300.0
ECG_KIND = "ecg"

REASONS = frozenset(
    {
        "oversize",
        "bad-topic",
        "truncated",
        "bad-magic",
        "unsupported-version",
        "bad-length",
        "bad-checksum",
        "bad-field",
        "device-mismatch",
        "unknown-device",
        "unsigned",
        "bad-signature",
        "internal-error",
        "conflict",
        "implausible-time",
    }
)


@dataclass(frozen=True, eq=False)
class Accepted:
    """A valid reading, as received. Its storage key is fields.key.

    `fields` keeps the samples as their wire bytes (what the store writes); `reading` builds
    the full wire.Reading with numpy samples only when someone asks for it."""

    topic: str
    fields: ReadingFields
    received_at: float
    raw: bytes

    @cached_property
    def reading(self) -> Reading:
        return self.fields.to_reading()

    @property
    def key(self) -> tuple[str, int, int]:
        return self.fields.key

    @property
    def size(self) -> int:
        return len(self.raw)


@dataclass(frozen=True)
class Quarantined:
    """A message that is kept, with its raw bytes, but never stored as a reading."""

    topic: str
    reason: str
    detail: str
    raw: bytes
    received_at: float

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown quarantine reason {self.reason!r}")


def validate(topic: str, payload: bytes, received_at: float,
             keys: Mapping[str, bytes] | None = None) -> Accepted | Quarantined:
    """Classify one message. Never raises, whatever the bytes or the topic. With `keys`
    (device id -> reading key), only readings signed with their device's key are accepted."""
    try:
        raw = bytes(payload)
    except Exception as exc:  # noqa: BLE001 - payload of an unexpected type: still quarantine
        return Quarantined(str(topic), "internal-error", f"payload is not bytes: {exc!r}", b"",
                           received_at)
    try:
        return _validate(str(topic), raw, received_at, keys)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"; a bug shows here
        return Quarantined(str(topic), "internal-error", f"{type(exc).__name__}: {exc}", raw,
                           received_at)


@dataclass(frozen=True)
class _Problem:
    """Why a message is quarantined: one of REASONS and a human-readable detail."""

    reason: str
    detail: str


def _validate(topic: str, raw: bytes, received_at: float,
              keys: Mapping[str, bytes] | None) -> Accepted | Quarantined:
    checked = _check(topic, raw, keys)
    if isinstance(checked, _Problem):
        return Quarantined(topic, checked.reason, checked.detail, raw, received_at)
    ahead = checked.captured_at + checked.n_samples / checked.sample_rate_hz - received_at
    if ahead > MAX_FUTURE_S:
        return Quarantined(topic, "implausible-time",
                           f"captured up to {ahead:.0f} s after it was received (at most"
                           f" {MAX_FUTURE_S:.0f} s of clock difference is allowed)", raw, received_at)
    return Accepted(topic, checked, received_at, raw)


def _check(topic: str, raw: bytes, keys: Mapping[str, bytes] | None) -> ReadingFields | _Problem:
    """The decoded reading, or the first problem found, checks in the module docstring's order."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        return _Problem("oversize", f"{len(raw)} bytes > {MAX_PAYLOAD_BYTES}")
    topic_device = _ecg_topic_device(topic)
    if isinstance(topic_device, _Problem):
        return topic_device
    try:
        reading = decode_fields(raw)
    except WireError as exc:
        return _Problem(exc.reason, str(exc))
    return _reading_problem(reading, topic_device, raw, keys) or reading


def _ecg_topic_device(topic: str) -> str | _Problem:
    """The device an ECG topic names, or why the topic is bad."""
    try:
        topic_device = device_from_topic(topic)
    except WireError as exc:
        return _Problem("bad-topic", str(exc))
    kind = topic.rsplit("/", 1)[-1]
    if kind != ECG_KIND:
        return _Problem("bad-topic", f"topic {topic!r} is not a {ECG_KIND} topic")
    return topic_device


def _reading_problem(reading: ReadingFields, topic_device: str, raw: bytes,
                     keys: Mapping[str, bytes] | None) -> _Problem | None:
    """A decoded reading that disagrees with its topic, is not its device's (with keys), or is
    implausibly long."""
    if reading.device_id != topic_device:
        return _Problem(
            "device-mismatch",
            f"topic names {topic_device!r}, payload names {reading.device_id!r}",
        )
    if keys is not None and (problem := _signature_problem(reading, raw, keys)):
        return problem
    duration = reading.n_samples / reading.sample_rate_hz
    if duration > MAX_CHUNK_SECONDS:
        return _Problem(
            "bad-field",
            f"{reading.n_samples} samples at {reading.sample_rate_hz} Hz is {duration:.1f} s,"
            f" over {MAX_CHUNK_SECONDS:.0f} s per chunk",
        )
    return None


def _signature_problem(reading: ReadingFields, raw: bytes, keys: Mapping[str, bytes]) -> _Problem | None:
    """Why a reading is not signed with its own device's key, if it is not."""
    key = keys.get(reading.device_id)
    if key is None:
        return _Problem("unknown-device", f"no reading key for device {reading.device_id!r}"
                                          " (not provisioned)")
    if not reading.signature:
        return _Problem("unsigned", f"{reading.device_id!r} must sign its readings; this one is not")
    if not verify_signature(raw, reading, key):
        return _Problem("bad-signature", f"the {len(reading.signature)}-byte signature is not"
                                         f" {reading.device_id!r}'s HMAC of the payload")
    return None
