"""Binary encoding of a Reading (format version 1). Layout: docs/wire-format.md.

All integers are big-endian. The payload ends with a CRC-32 of every byte before it,
and its length must match the lengths it declares exactly, so every truncation and
every trailing byte is rejected. A signed payload (flag bit 1) carries an HMAC-SHA256 just
before the CRC: wire/signing.py.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import numpy as np

from wire.errors import (
    BadMagicError,
    ChecksumError,
    FieldError,
    LengthError,
    TruncatedError,
    VersionError,
)
from wire.reading import FLAG_BACKLOG, FLAG_SIGNED, Reading, check_device_id, check_fields
from wire.signing import SIGNATURE_BYTES, keyed_mac

MAGIC = b"HC"
WIRE_VERSION = 1
MAX_PAYLOAD_BYTES = 128 * 1024

_PREFIX = struct.Struct(">2sBBB")  # magic, version, flags, device id length
# boot_epoch, seq, captured_at_us, sample_rate_hz, gain_uv, strip_id, chunk, chunks, n_samples
_FIXED = struct.Struct(">IIqHfIHHH")
_U16 = struct.Struct(">H")
_CRC = struct.Struct(">I")


def encode_reading(reading: Reading, flags: int | None = None, key: bytes | None = None) -> bytes:
    """Encode a reading; `flags` overrides reading.flags (e.g. to mark a backlog send).

    With `key` (the device's reading key, wire.signing.reading_key), the payload is signed: its
    signature is the HMAC-SHA256 of every byte before it, made here, and reading.signature is
    ignored. Without, reading.signature (often none) is carried as it is."""
    f = reading.flags if flags is None else flags
    sig = reading.signature if key is None else b""
    sig_len = len(sig) if key is None else SIGNATURE_BYTES
    f = (f | FLAG_SIGNED) if sig_len else (f & ~FLAG_SIGNED)
    dev = reading.device_id.encode("ascii")
    # the signed part (everything before the signature) is built once; the HMAC reads it there
    signed = b"".join((
        _PREFIX.pack(MAGIC, WIRE_VERSION, f, len(dev)),
        dev,
        _FIXED.pack(
            reading.boot_epoch,
            reading.seq,
            round(reading.captured_at * 1_000_000),
            reading.sample_rate_hz,
            reading.gain_uv,
            reading.strip_id,
            reading.chunk,
            reading.chunks,
            reading.samples.size,
        ),
        reading.samples.astype(">i2", copy=False).tobytes(),
        _U16.pack(sig_len),
    ))
    if key is not None:
        mac = keyed_mac(key)
        mac.update(signed)
        sig = mac.digest()
    body = signed + sig  # no copy when unsigned: CPython returns `signed` itself
    return body + _CRC.pack(zlib.crc32(body))


class ReadingFields(NamedTuple):
    """A decoded, fully validated reading whose samples stay as their big-endian wire bytes.

    The ingest service stores these bytes as they are, so it never needs numpy per message;
    to_reading() gives the full Reading when the samples are wanted as numbers."""

    device_id: str
    boot_epoch: int
    seq: int
    captured_at: float
    sample_rate_hz: int
    gain_uv: float
    flags: int
    strip_id: int
    chunk: int
    chunks: int
    n_samples: int
    samples_be: bytes
    signature: bytes

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.device_id, self.boot_epoch, self.seq)

    @property
    def backlog(self) -> bool:
        return bool(self.flags & FLAG_BACKLOG)

    def to_reading(self) -> Reading:
        return Reading(
            device_id=self.device_id, boot_epoch=self.boot_epoch, seq=self.seq,
            captured_at=self.captured_at, sample_rate_hz=self.sample_rate_hz, gain_uv=self.gain_uv,
            samples=np.frombuffer(self.samples_be, dtype=">i2").astype(np.int16), flags=self.flags,
            strip_id=self.strip_id, chunk=self.chunk, chunks=self.chunks, signature=self.signature,
        )


def decode_fields(payload: bytes) -> ReadingFields:
    """Decode and validate a payload without building sample arrays. Raises a WireError
    subclass on any defect; accepts exactly the payloads decode_reading accepts."""
    data = memoryview(payload)
    n = len(data)
    if n > MAX_PAYLOAD_BYTES:
        raise LengthError(f"payload of {n} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    if n < _PREFIX.size:
        raise TruncatedError(f"{n} bytes is shorter than the {_PREFIX.size}-byte prefix")
    magic, version, flags, dev_len = _PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise BadMagicError(f"magic {bytes(magic)!r} is not {MAGIC!r}")
    if version != WIRE_VERSION:
        raise VersionError(f"wire version {version} is not supported (this reads {WIRE_VERSION})")
    off = _PREFIX.size
    need = off + dev_len + _FIXED.size
    if n < need:
        raise TruncatedError(f"{n} bytes; the header needs {need}")
    try:
        device_id = bytes(data[off : off + dev_len]).decode("ascii")
    except UnicodeDecodeError as exc:
        raise FieldError("device id is not ASCII") from exc
    off += dev_len
    (boot, seq, cap_us, rate, gain, strip, chunk, chunks, n_samples) = _FIXED.unpack_from(data, off)
    off += _FIXED.size
    samples_end = off + 2 * n_samples
    if n < samples_end + _U16.size:
        raise TruncatedError(f"{n} bytes; {n_samples} samples need {samples_end + _U16.size}")
    (sig_len,) = _U16.unpack_from(data, samples_end)
    sig_start = samples_end + _U16.size
    total = sig_start + sig_len + _CRC.size
    if n < total:
        raise TruncatedError(f"{n} bytes; the declared lengths need {total}")
    if n > total:
        raise LengthError(f"{n - total} trailing bytes after the declared lengths")
    (crc,) = _CRC.unpack_from(data, total - _CRC.size)
    if zlib.crc32(data[: total - _CRC.size]) != crc:
        raise ChecksumError("CRC-32 does not match")
    if bool(flags & FLAG_SIGNED) != (sig_len > 0):
        raise FieldError("signed flag and signature length disagree")
    check_device_id(device_id)
    captured_at = cap_us / 1_000_000
    gain = float(gain)
    check_fields(boot_epoch=boot, seq=seq, strip_id=strip, sample_rate_hz=rate, gain_uv=gain,
                 captured_at=captured_at, chunk=chunk, chunks=chunks, flags=flags, n_samples=n_samples,
                 signature_len=sig_len)
    samples_be = bytes(data[off:samples_end])
    signature = bytes(data[sig_start : sig_start + sig_len])
    return ReadingFields(device_id, boot, seq, captured_at, rate, gain, flags, strip, chunk, chunks,
                         n_samples, samples_be, signature)


def decode_reading(payload: bytes) -> Reading:
    """Decode and validate a payload. Raises a WireError subclass on any defect."""
    return decode_fields(payload).to_reading()
