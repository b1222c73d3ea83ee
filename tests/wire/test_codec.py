"""Round-trip and rejection properties of the reading codec."""

from __future__ import annotations

import contextlib
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import FLAG_BACKLOG, Reading, WireError, decode_reading, encode_reading
from wire.codec import MAX_PAYLOAD_BYTES
from wire.errors import (
    BadMagicError,
    ChecksumError,
    FieldError,
    LengthError,
    TruncatedError,
    VersionError,
)
from wire.reading import FLAG_LEAD_OFF, KNOWN_FLAGS

device_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    n = draw(st.integers(1, 600))
    samples = np.frombuffer(draw(st.binary(min_size=2 * n, max_size=2 * n)), dtype=np.int16).copy()
    chunks = draw(st.integers(1, 40))
    return Reading(
        device_id=draw(device_ids),
        boot_epoch=draw(st.integers(0, 2**32 - 1)),
        seq=draw(st.integers(0, 2**32 - 1)),
        captured_at=draw(st.integers(0, 2**40)) / 1e6,
        sample_rate_hz=draw(st.integers(1, 2000)),
        gain_uv=float(np.float32(draw(st.floats(0.01, 100.0)))),
        samples=samples,
        flags=draw(st.sampled_from([0, FLAG_BACKLOG])),
        strip_id=draw(st.integers(0, 2**32 - 1)),
        chunk=draw(st.integers(0, chunks - 1)),
        chunks=chunks,
        signature=draw(st.binary(max_size=64)),
    )


@given(readings())
def test_round_trip(reading: Reading) -> None:
    assert decode_reading(encode_reading(reading)) == reading


@settings(max_examples=60)
@given(readings(), st.data())
def test_every_truncation_is_rejected(reading: Reading, data: st.DataObject) -> None:
    payload = encode_reading(reading)
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(WireError):
        decode_reading(payload[:cut])


def test_every_truncation_of_one_reading_is_rejected() -> None:
    r = Reading("hc-1", 1, 2, 1_700_000_000.25, 250, 2.5, np.arange(250, dtype=np.int16))
    payload = encode_reading(r)
    for cut in range(len(payload)):
        with pytest.raises(WireError):
            decode_reading(payload[:cut])


@given(readings(), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(reading: Reading, extra: bytes) -> None:
    with pytest.raises(LengthError):
        decode_reading(encode_reading(reading) + extra)


@given(st.binary(max_size=300))
def test_random_bytes_never_crash(blob: bytes) -> None:
    with contextlib.suppress(WireError):
        decode_reading(blob)


def _one() -> bytes:
    return encode_reading(Reading("hc-1", 0, 7, 10.0, 250, 1.0, np.zeros(250, dtype=np.int16)))


def test_specific_defects_have_specific_reasons() -> None:
    good = _one()
    with pytest.raises(BadMagicError):
        decode_reading(b"XX" + good[2:])
    with pytest.raises(VersionError):
        decode_reading(good[:2] + bytes([9]) + good[3:])
    flipped = bytearray(good)
    flipped[60] ^= 0xFF  # a sample byte
    with pytest.raises(ChecksumError):
        decode_reading(bytes(flipped))
    with pytest.raises(TruncatedError):
        decode_reading(good[:-1])
    with pytest.raises(LengthError):
        decode_reading(good + b"\0" * MAX_PAYLOAD_BYTES)


def test_the_lead_off_flag_round_trips_alone_and_with_backlog() -> None:
    r = Reading("hc-1", 0, 7, 10.0, 250, 1.0, np.zeros(250, dtype=np.int16), flags=FLAG_LEAD_OFF)
    for flags in (FLAG_LEAD_OFF, FLAG_LEAD_OFF | FLAG_BACKLOG):
        back = decode_reading(encode_reading(r, flags=flags))
        assert back.flags == flags and back.backlog == bool(flags & FLAG_BACKLOG)
    assert FLAG_LEAD_OFF == 0x04 and FLAG_LEAD_OFF & KNOWN_FLAGS
    assert not (0x08 & KNOWN_FLAGS)  # the next bit is still refused (below)


def test_backlog_flag_override_and_size_is_compact() -> None:
    r = Reading("hc-1", 0, 7, 10.0, 250, 1.0, np.zeros(250, dtype=np.int16))
    assert decode_reading(encode_reading(r, flags=FLAG_BACKLOG)).backlog
    assert len(encode_reading(r)) < 2 * 250 + 64


@pytest.mark.parametrize(
    "kw",
    [
        {"device_id": "bad/id"},
        {"seq": -1},
        {"sample_rate_hz": 0},
        {"gain_uv": 0.0},
        {"samples": np.zeros(0, dtype=np.int16)},
        {"samples": np.zeros(5, dtype=np.float32)},
        {"chunk": 3, "chunks": 2},
        {"flags": 0x80},
        {"flags": 0x08},
    ],
)
def test_invalid_fields_are_refused(kw: dict[str, object]) -> None:
    base: dict[str, object] = {"device_id": "hc-1", "boot_epoch": 0, "seq": 0, "captured_at": 1.0,
                               "sample_rate_hz": 250, "gain_uv": 1.0,
                               "samples": np.zeros(3, dtype=np.int16)}
    base.update(kw)
    with pytest.raises(FieldError):
        Reading(**base)  # type: ignore[arg-type]


@given(readings())
def test_fields_decoder_matches_full_decoder(reading: Reading) -> None:
    from wire.codec import decode_fields

    payload = encode_reading(reading)
    fields = decode_fields(payload)
    assert fields.to_reading() == reading
    assert fields.key == reading.key and fields.n_samples == reading.samples.size
    assert fields.samples_be == reading.samples.astype(">i2").tobytes()


@pytest.mark.parametrize("bad", ["hc-1\n", "\nhc-1", "hc-1\r", "hc 1", ""])
def test_a_device_id_with_a_newline_is_refused(bad: str) -> None:
    """`$` matches before a trailing newline: "hc-1\\n" passed as a device id, on the wire and
    in topics, before the pattern was anchored with \\Z."""
    from wire import device_from_topic

    with pytest.raises(FieldError):
        Reading(bad, 0, 0, 1.0, 250, 1.0, np.zeros(3, dtype=np.int16))
    with pytest.raises(FieldError):
        device_from_topic(f"heartcheck/{bad}/ecg")


def test_a_payload_naming_a_device_with_a_newline_is_refused() -> None:
    good = encode_reading(Reading("hc-1", 0, 0, 1.0, 250, 1.0, np.zeros(3, dtype=np.int16)))
    forged = bytearray(good[:-4])
    forged[4:9] = bytes([5]) + b"hc-1\n"  # the same payload naming "hc-1\n" (CRC fixed up)
    with pytest.raises(FieldError):
        decode_reading(bytes(forged) + zlib.crc32(forged).to_bytes(4, "big"))
