from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import (
    WireError,
    ack_topic,
    decode_ack,
    decode_status,
    device_from_topic,
    ecg_topic,
    encode_ack,
    encode_status,
    seqs_to_ranges,
)


@given(st.sets(st.integers(0, 500)))
def test_ranges_cover_exactly_the_seqs(seqs: set[int]) -> None:
    ranges = seqs_to_ranges(seqs)
    covered = {s for a, b in ranges for s in range(a, b + 1)}
    assert covered == seqs
    assert all(ranges[i][1] + 1 < ranges[i + 1][0] for i in range(len(ranges) - 1))


def test_ack_round_trip_and_rejections() -> None:
    assert decode_ack(encode_ack("hc-1", [(0, 4), (9, 9)])) == ("hc-1", [(0, 4), (9, 9)])
    for bad in (b"", b"{", b'{"v":2,"ranges":[]}', b'{"v":1,"device_id":"a","ranges":[[5,1]]}'):
        with pytest.raises(WireError):
            decode_ack(bad)


def test_topics_and_status() -> None:
    assert ecg_topic("hc-7") == "heartcheck/hc-7/ecg"
    assert device_from_topic(ack_topic("hc-7")) == "hc-7"
    with pytest.raises(WireError):
        device_from_topic("heartcheck/a/b/c")
    with pytest.raises(WireError):
        ecg_topic("has space")
    doc = decode_status(encode_status("hc-7", "offline", 3, 12.5))
    assert doc["state"] == "offline" and doc["boot_epoch"] == 3


def test_signed_acks() -> None:
    from wire import ack_key
    from wire.errors import SignatureError

    master = bytes(range(32))
    key = ack_key(master, "hc-0001")
    assert key != ack_key(master, "hc-0002") and len(key) == 32
    signed = encode_ack("hc-0001", [(0, 41), (43, 43)], key)
    assert decode_ack(signed, key) == ("hc-0001", [(0, 41), (43, 43)])
    assert decode_ack(signed) == ("hc-0001", [(0, 41), (43, 43)])  # no key: not checked
    unsigned = encode_ack("hc-0001", [(0, 41)])
    assert b"sig" not in unsigned
    with pytest.raises(SignatureError, match="unsigned ack"):
        decode_ack(unsigned, key)
    with pytest.raises(SignatureError, match="does not match"):
        decode_ack(signed.replace(b"[43,43]", b"[43,99]"), key)  # a widened range
    with pytest.raises(SignatureError, match="does not match"):
        decode_ack(encode_ack("hc-0001", [(0, 41)], ack_key(master, "hc-0002")), key)
    with pytest.raises(SignatureError, match="does not match"):
        decode_ack(encode_ack("hc-0001", [(0, 41)], ack_key(b"\x00" * 32, "hc-0001")), key)


def test_signed_service_status() -> None:
    from wire import decode_service_status, encode_service_status, status_key
    from wire.errors import SignatureError

    key = status_key(bytes(range(32)))
    signed = encode_service_status("online", "b00700000000", "5e5510000000", False, 1_700_000_000.25, key)
    doc = decode_service_status(signed, key)
    assert doc["state"] == "online" and doc["session"] == "5e5510000000"
    assert decode_service_status(signed)["state"] == "online"  # no key: not checked
    unsigned = encode_service_status("offline", "b00700000000", "5e5510000000", True, 1_700_000_001.0)
    with pytest.raises(SignatureError, match="unsigned"):
        decode_service_status(unsigned, key)
    with pytest.raises(SignatureError, match="does not match"):
        decode_service_status(signed.replace(b'"online"', b'"offline"'), key)
    other = status_key(b"\0" * 32)  # another stack's key
    with pytest.raises(SignatureError, match="does not match"):
        decode_service_status(encode_service_status("offline", "b", "s", True, 1.0, other), key)
