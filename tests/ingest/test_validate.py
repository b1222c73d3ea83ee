"""validate(): every quarantine reason, acceptance, and "never raises" on arbitrary input."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.validate import MAX_FUTURE_S, REASONS, Accepted, Quarantined, validate
from tests.ingest.conftest import make_reading, payload_of
from wire import MAX_PAYLOAD_BYTES, encode_reading

T = 1_700_000_100.0
TOPIC = "heartcheck/hc-0001/ecg"


def q(topic: str, payload: bytes) -> Quarantined:
    return q_at(topic, payload, T)


def q_at(topic: str, payload: bytes, at: float) -> Quarantined:
    v = validate(topic, payload, at)
    assert isinstance(v, Quarantined), v
    assert v.raw == payload
    assert v.received_at == at
    assert v.detail
    return v


def with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_a_valid_reading_is_accepted() -> None:
    payload = payload_of("hc-0001", 7)
    v = validate(TOPIC, payload, T)
    assert isinstance(v, Accepted)
    assert v.key == ("hc-0001", 1, 7)
    assert v.reading == make_reading("hc-0001", 7)
    assert v.raw == payload and v.size == len(payload) and v.received_at == T


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "truncated"),
        (b"HC", "truncated"),
        (payload_of("hc-0001", 1)[:-1], "truncated"),
        (payload_of("hc-0001", 1)[:40], "truncated"),
        (b"XX" + payload_of("hc-0001", 1)[2:], "bad-magic"),
        (b"HC\x02" + payload_of("hc-0001", 1)[3:], "unsupported-version"),
        (payload_of("hc-0001", 1) + b"\x00", "bad-length"),
        (payload_of("hc-0001", 1)[:-1] + bytes([payload_of("hc-0001", 1)[-1] ^ 1]), "bad-checksum"),
    ],
    ids=["empty", "prefix-only", "one-short", "header-cut", "magic", "version", "trailing", "crc"],
)
def test_wire_defects_keep_the_wire_reason(payload: bytes, reason: str) -> None:
    assert q(TOPIC, payload).reason == reason


def test_a_bad_field_with_a_good_crc_is_bad_field() -> None:
    good = payload_of("hc-0001", 1)
    # flags byte (offset 3) with an unknown bit, CRC recomputed so only the field is wrong
    body = bytearray(good[:-4])
    body[3] |= 0x80
    assert q(TOPIC, with_crc(bytes(body))).reason == "bad-field"


def test_zero_sample_rate_is_bad_field() -> None:
    good = payload_of("hc-0001", 1)
    dev_len = good[4]
    rate_off = 5 + dev_len + 4 + 4 + 8  # boot, seq, captured_at_us
    body = bytearray(good[:-4])
    body[rate_off:rate_off + 2] = b"\x00\x00"
    assert q(TOPIC, with_crc(bytes(body))).reason == "bad-field"


def test_oversize_is_checked_before_decoding() -> None:
    payload = b"HC" + b"\x00" * MAX_PAYLOAD_BYTES
    assert q(TOPIC, payload).reason == "oversize"
    # exactly at the limit is not oversize (it fails for another reason)
    assert q(TOPIC, payload[: MAX_PAYLOAD_BYTES]).reason != "oversize"


@pytest.mark.parametrize(
    "topic",
    ["", "heartcheck", "heartcheck/hc-0001", "heartcheck/hc-0001/ecg/x", "other/hc-0001/ecg",
     "heartcheck/hc 0001/ecg", "heartcheck//ecg", "heartcheck/hc-0001/ack",
     "heartcheck/hc-0001/status"],
)
def test_bad_topics(topic: str) -> None:
    assert q(topic, payload_of("hc-0001", 1)).reason == "bad-topic"


def test_device_mismatch() -> None:
    v = q("heartcheck/hc-0002/ecg", payload_of("hc-0001", 1))
    assert v.reason == "device-mismatch"
    assert "hc-0002" in v.detail and "hc-0001" in v.detail


def test_an_absurdly_long_chunk_is_bad_field() -> None:
    r = make_reading("hc-0001", 1, n=30_000, rate=100)  # 300 s in one chunk
    v = q(TOPIC, encode_reading(r))
    assert v.reason == "bad-field" and "300.0 s" in v.detail
    ok = validate(TOPIC, encode_reading(make_reading("hc-0001", 1, n=30_000, rate=1000)), T)
    assert isinstance(ok, Accepted)  # a 30-s strip at 1 kHz is fine


def test_every_reason_is_covered_by_this_file() -> None:
    seen = {
        q("", b"").reason,
        q(TOPIC, b"HC").reason,
        q(TOPIC, b"XXXXXXXX").reason,
        q(TOPIC, b"HC\x09\x00\x00").reason,
        q(TOPIC, payload_of("hc-0001", 1) + b"!").reason,
        q(TOPIC, payload_of("hc-0001", 1)[:-1] + b"\x00").reason,
        q(TOPIC, encode_reading(make_reading("hc-0001", 1, n=30_000, rate=100))).reason,
        q("heartcheck/hc-9/ecg", payload_of("hc-0001", 1)).reason,
        q(TOPIC, b"\x00" * (MAX_PAYLOAD_BYTES + 1)).reason,
        q_at(TOPIC, payload_of("hc-0001", 1), T - 3600).reason,
    }
    assert seen == REASONS - {"internal-error", "conflict"}  # conflict: the store (test_store.py)


def test_a_capture_time_ahead_of_the_service_clock_is_implausible() -> None:
    """A reading that ends more than MAX_FUTURE_S after it was received is quarantined; one
    captured before it arrived, or a little ahead (a device clock a minute fast), is not."""
    payload = payload_of("hc-0001", 1)  # captured 1_700_000_001, 1 s long
    end = 1_700_000_002.0
    assert isinstance(validate(TOPIC, payload, end + 5), Accepted)
    assert isinstance(validate(TOPIC, payload, end - 60), Accepted)
    far = validate(TOPIC, payload, end - MAX_FUTURE_S - 1)
    assert isinstance(far, Quarantined) and far.reason == "implausible-time", far
    assert far.raw == payload
    fifty = encode_reading(make_reading("hc-0001", 1, captured_at=1_700_000_000.0 + 50 * 365 * 86400))
    q50 = validate(TOPIC, fifty, end)
    assert isinstance(q50, Quarantined) and q50.reason == "implausible-time"


def test_internal_error_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_payload: bytes) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("ingest.validate.decode_fields", boom)
    v = validate(TOPIC, b"abc", T)
    assert v.raw == b"abc"
    assert isinstance(v, Quarantined) and v.reason == "internal-error" and "boom" in v.detail


def test_unknown_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown quarantine reason"):
        Quarantined(TOPIC, "meh", "", b"", T)


topics = st.one_of(
    st.text(max_size=80),
    st.builds(lambda d, k: f"heartcheck/{d}/{k}", st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
              st.sampled_from(["ecg", "ack", "x"])),
)


@settings(max_examples=400)
@given(topics, st.binary(max_size=2000))
def test_never_raises_on_random_bytes_and_topics(topic: str, payload: bytes) -> None:
    v = validate(topic, payload, T)
    assert isinstance(v, Quarantined)  # random bytes never carry a valid CRC-checked reading
    assert v.reason in REASONS - {"internal-error"}
    assert v.raw == payload


@settings(max_examples=200)
@given(st.data())
def test_never_raises_on_mutated_valid_payloads(data: st.DataObject) -> None:
    payload = bytearray(payload_of("hc-0001", data.draw(st.integers(0, 1000))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(payload)))
    v = validate(TOPIC, bytes(payload[:cut]), T)
    assert isinstance(v, (Accepted, Quarantined))
    if isinstance(v, Quarantined):
        assert v.reason in REASONS - {"internal-error"}


def test_samples_survive_validation_exactly() -> None:
    r = make_reading("hc-0001", 3)
    v = validate(TOPIC, encode_reading(r), T)
    assert isinstance(v, Accepted)
    assert np.array_equal(v.reading.samples, r.samples)
