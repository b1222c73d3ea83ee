"""validate(): every quarantine reason, acceptance, signatures (keys), and "never raises" on
arbitrary input."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.validate import MAX_FUTURE_S, REASONS, Accepted, Quarantined, validate
from tests.ingest.conftest import make_reading, payload_of
from wire import FLAG_BACKLOG, MAX_PAYLOAD_BYTES, encode_reading, reading_key

T = 1_700_000_100.0
TOPIC = "heartcheck/hc-0001/ecg"
KEY_1 = reading_key(b"\x01" * 32, "hc-0001")
KEY_2 = reading_key(b"\x02" * 32, "hc-0002")
KEYS = {"hc-0001": KEY_1, "hc-0002": KEY_2}


def signed(device_id: str, seq: int, key: bytes, **kw: object) -> bytes:
    return encode_reading(make_reading(device_id, seq, **kw), key=key)  # type: ignore[arg-type]


def q_keys(topic: str, payload: bytes) -> Quarantined:
    v = validate(topic, payload, T, KEYS)
    assert isinstance(v, Quarantined), v
    assert v.raw == payload and v.detail
    return v


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
        q_keys(TOPIC, payload_of("hc-0001", 1)).reason,
        q_keys("heartcheck/hc-0009/ecg", signed("hc-0009", 1, KEY_1)).reason,
        q_keys(TOPIC, signed("hc-0001", 1, KEY_2)).reason,
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


# --- signatures: validate(..., keys) ---------------------------------------------------------


def test_a_reading_signed_with_its_devices_key_is_accepted() -> None:
    payload = signed("hc-0001", 7, KEY_1)
    v = validate(TOPIC, payload, T, KEYS)
    assert isinstance(v, Accepted), v
    assert v.key == ("hc-0001", 1, 7) and v.raw == payload and len(v.fields.signature) == 32
    resent = validate(TOPIC, signed("hc-0001", 7, KEY_1, flags=FLAG_BACKLOG), T, KEYS)
    assert isinstance(resent, Accepted) and resent.fields.backlog


def test_an_unprovisioned_device_is_unknown_device_signed_or_not() -> None:
    topic = "heartcheck/hc-0003/ecg"
    for payload in (signed("hc-0003", 1, reading_key(b"\x03" * 32, "hc-0003")), payload_of("hc-0003", 1)):
        v = q_keys(topic, payload)
        assert v.reason == "unknown-device" and "hc-0003" in v.detail


def test_an_unsigned_reading_is_unsigned() -> None:
    assert q_keys(TOPIC, payload_of("hc-0001", 1)).reason == "unsigned"


def test_a_wrong_or_forged_signature_is_bad_signature() -> None:
    assert q_keys(TOPIC, signed("hc-0001", 1, KEY_2)).reason == "bad-signature"  # hc-0002's key
    # a signature-sized junk signature, and a signed reading altered with the CRC fixed up
    junk = encode_reading(replace(make_reading("hc-0001", 1), signature=b"\x00" * 32))
    assert q_keys(TOPIC, junk).reason == "bad-signature"
    body = bytearray(signed("hc-0001", 1, KEY_1)[:-4])
    body[-40] ^= 0x01  # the last sample
    assert q_keys(TOPIC, with_crc(bytes(body))).reason == "bad-signature"
    body = bytearray(signed("hc-0001", 1, KEY_1)[:-4])
    body[3] |= FLAG_BACKLOG  # marked as a re-send without re-signing
    assert q_keys(TOPIC, with_crc(bytes(body))).reason == "bad-signature"


def test_a_reading_signed_for_one_device_on_anothers_topic_is_device_mismatch() -> None:
    """hc-0001's genuine signed reading published on hc-0002's topic: the device check comes
    first, so it is a mismatch, neither accepted for hc-0002 nor blamed on the signature."""
    v = q_keys("heartcheck/hc-0002/ecg", signed("hc-0001", 1, KEY_1))
    assert v.reason == "device-mismatch"


def test_the_signature_checks_come_after_decoding_and_before_plausibility() -> None:
    assert q_keys(TOPIC, signed("hc-0001", 1, KEY_1)[:-1]).reason == "truncated"
    long_forged = encode_reading(make_reading("hc-0001", 1, n=30_000, rate=100), key=KEY_2)
    assert q_keys(TOPIC, long_forged).reason == "bad-signature"  # not bad-field: it is not hc-0001's
    long_genuine = encode_reading(make_reading("hc-0001", 1, n=30_000, rate=100), key=KEY_1)
    assert q_keys(TOPIC, long_genuine).reason == "bad-field"
    future = signed("hc-0001", 1, KEY_1, captured_at=T + 10 * MAX_FUTURE_S)
    assert q_keys(TOPIC, future).reason == "implausible-time"


def test_without_keys_signatures_are_not_checked() -> None:
    """keys=None, the insecure lab: unsigned readings are accepted, and so is a signature that
    would not verify (it is carried, not checked)."""
    for payload in (payload_of("hc-0001", 1), signed("hc-0001", 1, KEY_2)):
        assert isinstance(validate(TOPIC, payload, T), Accepted)
        assert isinstance(validate(TOPIC, payload, T, None), Accepted)


class LookupOnly(Mapping[str, bytes]):
    """A Mapping that is not a dict, like ingest.keys.DeviceKeys: validate uses only lookups."""

    def __getitem__(self, device_id: str) -> bytes:
        return KEYS[device_id]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("validate must not list every device")

    def __len__(self) -> int:
        raise AssertionError("validate must not count the devices")


def test_any_mapping_of_keys_works() -> None:
    assert isinstance(validate(TOPIC, signed("hc-0001", 1, KEY_1), T, LookupOnly()), Accepted)
    v = validate("heartcheck/hc-0003/ecg", payload_of("hc-0003", 1), T, LookupOnly())
    assert isinstance(v, Quarantined) and v.reason == "unknown-device"


@settings(max_examples=200)
@given(st.data())
def test_never_raises_on_mutated_signed_payloads(data: st.DataObject) -> None:
    """Mutations of a signed reading, CRC fixed up or not: never an exception, and never
    accepted unless the bytes are exactly the signed original."""
    # seq s is captured s seconds after T (make_reading): within MAX_FUTURE_S, so the original passes
    original = signed("hc-0001", data.draw(st.integers(0, 250)), KEY_1)
    payload = bytearray(original[:-4])
    for _ in range(data.draw(st.integers(1, 4))):
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    mutated = with_crc(bytes(payload)) if data.draw(st.booleans()) else bytes(payload) + original[-4:]
    v = validate(TOPIC, mutated, T, KEYS)
    assert isinstance(v, Accepted) == (mutated == original), v
    if isinstance(v, Quarantined):
        assert v.reason in REASONS - {"internal-error"}
