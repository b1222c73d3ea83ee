"""The ecgpipe wire format: readings, confirmations, status messages and topics.

Everything that crosses the broker is defined here, and nothing else imports paho.
See docs/wire-format.md for the byte layout; per-reading signatures: wire/signing.py.
"""

from wire.acks import ack_key, decode_ack, encode_ack, seqs_to_ranges
from wire.codec import MAX_PAYLOAD_BYTES, WIRE_VERSION, decode_reading, encode_reading
from wire.errors import WireError
from wire.reading import FLAG_BACKLOG, Reading
from wire.signing import reading_key, verify_signature
from wire.status import (
    decode_service_status,
    decode_status,
    encode_service_status,
    encode_status,
    status_key,
)
from wire.topics import INGEST_STATUS_TOPIC, ack_topic, device_from_topic, ecg_topic, status_topic

__all__ = [
    "FLAG_BACKLOG",
    "INGEST_STATUS_TOPIC",
    "MAX_PAYLOAD_BYTES",
    "WIRE_VERSION",
    "Reading",
    "WireError",
    "ack_key",
    "ack_topic",
    "decode_ack",
    "decode_reading",
    "decode_service_status",
    "decode_status",
    "device_from_topic",
    "ecg_topic",
    "encode_ack",
    "encode_reading",
    "encode_service_status",
    "encode_status",
    "reading_key",
    "seqs_to_ranges",
    "status_key",
    "status_topic",
    "verify_signature",
]
