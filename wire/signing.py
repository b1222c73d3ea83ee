"""Per-reading signatures: HMAC-SHA256 in the reading's signature slot (docs/wire-format.md).

    reading_key(root, device_id) -> bytes              one device's reading key
    wire.encode_reading(reading, key=...)              signs while it encodes
    verify_signature(payload, fields, key) -> bool     checks a decoded payload's signature

A signed payload carries S = 32 signature bytes: the HMAC-SHA256, under the device's reading
key, of every byte before the signature (magic through the S field: the flags, the backlog bit
among them, and S itself are covered). The CRC-32 after it covers the signature too, so a
re-send that sets the backlog bit is signed again.

The reading key is HMAC-SHA256(root, "ecgpipe-reading:" + device_id), where root is the
device's provisioned 32-byte secret; ingest holds every device's key, a device only its own.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # wire.codec imports this module
    from wire.codec import ReadingFields

SIGNATURE_BYTES = hashlib.sha256().digest_size  # 32
CRC_BYTES = 4  # the CRC-32 that ends every payload (wire.codec); the signature is just before it
_READING_PREFIX = b"ecgpipe-reading:"


def reading_key(root: bytes, device_id: str) -> bytes:
    """The key one device's readings are signed with, derived from its provisioned secret."""
    return hmac.new(root, _READING_PREFIX + device_id.encode("ascii"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=4096)
def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def keyed_mac(key: bytes) -> hmac.HMAC:
    """A fresh HMAC-SHA256 under `key`, nothing fed to it yet. A copy of one kept per key (up to
    4096 keys, a fleet's worth): keying HMAC hashes two pad blocks, a fifth of what signing a
    1-s reading costs, and a device signs with one key thousands of times."""
    return _keyed(key).copy()


def verify_signature(payload: bytes, fields: ReadingFields, key: bytes) -> bool:
    """True only if fields.signature is the HMAC-SHA256 under `key` of the signed part of
    `payload` (every byte before the signature). `payload` must be the exact bytes `fields` was
    decoded from (wire.codec.decode_fields); an unsigned reading never verifies."""
    sig = fields.signature
    end = len(payload) - CRC_BYTES - len(sig)
    data = memoryview(payload)
    if not sig or end < 0 or data[end : end + len(sig)] != sig:  # not the payload of `fields`
        return False
    mac = keyed_mac(key)
    mac.update(data[:end])
    return hmac.compare_digest(mac.digest(), sig)
