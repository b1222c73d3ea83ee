"""Per-reading signatures (wire/signing.py, encode_reading's key): what is signed, that every
altered byte of the signed part or the signature fails verification, that another device's key
fails, and that unsigned payloads encode exactly as they did before signatures existed."""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wire.test_codec import readings
from wire import (
    FLAG_BACKLOG,
    Reading,
    WireError,
    ack_key,
    decode_reading,
    encode_reading,
    reading_key,
    verify_signature,
)
from wire.codec import decode_fields
from wire.reading import FLAG_SIGNED

ROOT_A = bytes(range(32))
ROOT_B = bytes(range(100, 132))
KEY_A = reading_key(ROOT_A, "hc-A")
KEY_B = reading_key(ROOT_B, "hc-B")
CRC = 4
SIG = 32


def reading(device_id: str = "hc-A", seq: int = 7, samples: np.ndarray | None = None,
            **kw: object) -> Reading:
    if samples is None:
        samples = (np.sin(np.arange(250) / 10.0) * 1000).astype(np.int16)
    return Reading(device_id, 3, seq, 1_700_000_000.5, 250, 2.5, samples, **kw)  # type: ignore[arg-type]


def with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def verifies(payload: bytes, key: bytes) -> bool:
    """What ingest asks: does the payload decode, and is it signed with `key`?"""
    try:
        fields = decode_fields(payload)
    except WireError:
        return False
    return verify_signature(payload, fields, key)


def test_reading_key_is_the_documented_hmac_and_not_the_ack_key() -> None:
    want = hmac.new(ROOT_A, b"ecgpipe-reading:hc-A", hashlib.sha256).digest()
    assert reading_key(ROOT_A, "hc-A") == want and len(want) == 32
    assert reading_key(ROOT_A, "hc-A") != reading_key(ROOT_A, "hc-B")  # bound to the device id
    assert reading_key(ROOT_A, "hc-A") != ack_key(ROOT_A, "hc-A")


def test_a_signed_payload_is_the_hmac_of_every_byte_before_the_signature() -> None:
    r = reading(signature=b"ignored when a key is given")
    payload = encode_reading(r, key=KEY_A)
    signed_end = len(payload) - CRC - SIG
    assert payload[2] == 1  # the layout did not change, nor the version
    assert payload[3] & FLAG_SIGNED
    assert payload[signed_end - 2 : signed_end] == struct.pack(">H", SIG)  # S is signed too
    sig = payload[signed_end : signed_end + SIG]
    assert sig == hmac.new(KEY_A, payload[:signed_end], hashlib.sha256).digest()
    assert payload == with_crc(payload[:-CRC])  # the CRC covers the signature
    assert len(payload) == len(encode_reading(replace(r, signature=b""))) + SIG
    back = decode_reading(payload)
    assert back.signature == sig and back.flags == FLAG_SIGNED
    assert back == replace(r, signature=sig)


@given(readings())
def test_signed_round_trip(r: Reading) -> None:
    key = reading_key(ROOT_A, r.device_id)
    payload = encode_reading(r, key=key)
    fields = decode_fields(payload)
    assert verify_signature(payload, fields, key)
    assert fields.to_reading() == replace(r, signature=fields.signature)
    assert len(fields.signature) == SIG


def test_the_backlog_bit_is_signed_so_a_resend_is_signed_again() -> None:
    r = reading()
    live, resent = encode_reading(r, key=KEY_A), encode_reading(r, flags=FLAG_BACKLOG, key=KEY_A)
    assert verifies(live, KEY_A) and verifies(resent, KEY_A)
    assert live[-CRC - SIG : -CRC] != resent[-CRC - SIG : -CRC]
    # setting the bit on the live copy without re-signing (CRC fixed up) is caught
    body = bytearray(live[:-CRC])
    body[3] |= FLAG_BACKLOG
    assert decode_reading(with_crc(bytes(body))).backlog
    assert not verifies(with_crc(bytes(body)), KEY_A)


@settings(max_examples=300)
@given(st.data())
def test_any_byte_changed_in_the_signed_part_or_the_signature_fails(data: st.DataObject) -> None:
    """Every byte but the CRC: the CRC is fixed up afterwards, as a forger would, so the change
    reaches decode's field checks or verify_signature; one of them must refuse it."""
    r = data.draw(readings())
    payload = encode_reading(r, key=reading_key(ROOT_A, r.device_id))
    i = data.draw(st.integers(0, len(payload) - CRC - 1))
    body = bytearray(payload[:-CRC])
    body[i] ^= data.draw(st.integers(1, 255))
    assert not verifies(with_crc(bytes(body)), reading_key(ROOT_A, r.device_id))


def test_every_single_byte_of_one_payload_matters() -> None:
    """The same, exhaustively for one reading: each byte position, one flip."""
    payload = encode_reading(reading(), key=KEY_A)
    reached_verify = 0
    for i in range(len(payload) - CRC):
        body = bytearray(payload[:-CRC])
        body[i] ^= 0x01
        forged = with_crc(bytes(body))
        assert not verifies(forged, KEY_A), i
        try:
            decode_fields(forged)
        except WireError:
            continue
        reached_verify += 1
    assert reached_verify > 500  # samples, times, ids, signature: verify_signature refused them


def test_another_devices_key_does_not_verify() -> None:
    r = reading("hc-A")
    forged = encode_reading(r, key=KEY_B)  # hc-B's key, hc-A's reading
    assert not verifies(forged, KEY_A)
    assert not verifies(encode_reading(r, key=reading_key(ROOT_B, "hc-A")), KEY_A)  # another root
    assert verifies(encode_reading(r, key=KEY_A), KEY_A)


def test_unsigned_and_arbitrary_signatures_do_not_verify() -> None:
    unsigned = encode_reading(reading())
    assert not verifies(unsigned, KEY_A)
    junk = encode_reading(reading(signature=b"\x00" * SIG))
    assert decode_fields(junk).signature == b"\x00" * SIG and not verifies(junk, KEY_A)
    signed = encode_reading(reading(), key=KEY_A)
    # the signature of one payload next to the fields of another is refused, never mixed up
    other = encode_reading(reading(seq=8), key=KEY_A)
    assert not verify_signature(signed, decode_fields(other), KEY_A)
    assert not verify_signature(signed[:10], decode_fields(signed), KEY_A)


GOLDEN = [  # encoded by wire/codec.py before signatures existed (commit 31b1d9c)
    ({"flags": FLAG_BACKLOG},
     ("484301010468632d37000000020000000900060a241822109000fa402000000000000000000001000500000001"
      "ffff7fff80000000b6391c14")),
    ({"signature": b"\x01\x02\x03"},
     ("484301020468632d37000000020000000900060a241822109000fa402000000000000000000001000500000001"
      "ffff7fff80000003010203663d217f")),
]


@pytest.mark.parametrize(("kw", "hexed"), GOLDEN, ids=["backlog", "carried-signature"])
def test_without_a_key_the_bytes_are_exactly_as_before(kw: dict[str, object], hexed: str) -> None:
    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    r = Reading("hc-7", 2, 9, 1_700_000_000.25, 250, 2.5, samples, **kw)  # type: ignore[arg-type]
    assert encode_reading(r).hex() == hexed
    assert encode_reading(r, key=None).hex() == hexed


def reference_encode(r: Reading, flags: int) -> bytes:
    """The documented layout, packed field by field (docs/wire-format.md)."""
    dev = r.device_id.encode()
    flags = flags | FLAG_SIGNED if r.signature else flags & ~FLAG_SIGNED
    body = (b"HC" + bytes([1, flags, len(dev)]) + dev
            + struct.pack(">IIqHfIHHH", r.boot_epoch, r.seq, round(r.captured_at * 1e6),
                          r.sample_rate_hz, r.gain_uv, r.strip_id, r.chunk, r.chunks, r.samples.size)
            + b"".join(struct.pack(">h", int(s)) for s in r.samples)
            + struct.pack(">H", len(r.signature)) + r.signature)
    return with_crc(body)


@settings(max_examples=50)
@given(readings(), st.sampled_from([None, 0, FLAG_BACKLOG]))
def test_without_a_key_the_layout_is_the_documented_one(r: Reading, flags: int | None) -> None:
    want = reference_encode(r, r.flags if flags is None else flags)
    assert encode_reading(r, flags) == want


def test_strided_samples_encode_like_contiguous_ones() -> None:
    base = np.arange(500, dtype=np.int16)
    strided = reading(samples=base[::2])
    dense = reading(samples=base[::2].copy())
    assert encode_reading(strided, key=KEY_A) == encode_reading(dense, key=KEY_A)
