"""The fuzz targets (fuzz/targets.py) in the suite: the regression corpus (tests/fuzz_corpus/,
inputs atheris and reviews found worth keeping: deep JSON nesting, booleans as seq ranges,
truncations, a wrong version, readings signed with the fuzz keys) and hypothesis strategies
(random bytes, mutated valid payloads, signed or not, JSON-shaped acks and statuses). A target
raises only on a crash; the documented refusals (WireError, Quarantined) are not crashes. The
coverage-guided run is `python -m fuzz`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.targets import (
    FUZZ_ROOT,
    RECEIVED_AT,
    TARGETS,
    ContractError,
    ack,
    reading,
    status,
    validate_message,
)
from ingest.validate import validate
from tests.ingest.conftest import make_reading, payload_of
from wire import WireError, ecg_topic, encode_reading, reading_key
from wire.acks import decode_ack
from wire.codec import decode_fields

CORPUS = Path(__file__).parent / "fuzz_corpus"
VALID = payload_of("hc-0001", 3)
SIGNED = encode_reading(make_reading("hc-0001", 3), key=reading_key(FUZZ_ROOT, "hc-0001"))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_regression_corpus_passes(target: str) -> None:
    files = sorted((CORPUS / target).iterdir())
    assert files, f"no corpus for {target}"
    for f in files:
        TARGETS[target](f.read_bytes())


def test_the_fuzz_command_knows_every_target() -> None:
    from fuzz.__main__ import TARGET_NAMES

    assert set(TARGET_NAMES) == set(TARGETS)


def test_deep_nesting_and_booleans_are_refused_not_crashes() -> None:
    with pytest.raises(WireError, match="not JSON"):
        decode_ack(b"[" * 100_000)
    with pytest.raises(WireError, match="bad ack range"):
        decode_ack(b'{"v":1,"device_id":"hc-1","ranges":[[true,true]]}')


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    for target in TARGETS.values():
        target(data)


@st.composite
def mutated(draw: st.DrawFn, valid: bytes = VALID) -> bytes:
    """A valid reading with a few bytes flipped, cut, or inserted."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[i] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[i : i + draw(st.integers(1, 64))]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_mutated_readings(data: bytes) -> None:
    reading(data)
    validate_message(data)


@settings(max_examples=300, deadline=None)
@given(mutated(SIGNED))
def test_mutated_signed_readings(data: bytes) -> None:
    validate_message(data)


def keyed_reason(payload: bytes) -> str:
    """What the validate target's keyed run makes of a payload: accepted, or why not."""
    dev = decode_fields(payload).device_id
    v = validate(ecg_topic(dev), payload, RECEIVED_AT, {dev: reading_key(FUZZ_ROOT, dev)})
    return getattr(v, "reason", "accepted")


def test_the_corpus_reaches_the_signature_checks() -> None:
    """Seeds signed with FUZZ_ROOT's keys: accepted by the keyed run, and one signed with the
    wrong device's key, so the fuzzer starts on both sides of verify_signature."""
    reasons = set()
    for f in (CORPUS / "validate").iterdir():
        try:
            reasons.add(keyed_reason(f.read_bytes()))
        except WireError:
            continue
    assert {"accepted", "bad-signature", "unsigned"} <= reasons, reasons


def test_the_keyed_run_catches_a_validator_that_skips_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    forged = encode_reading(make_reading("hc-0001", 3), key=reading_key(FUZZ_ROOT, "hc-0002"))
    validate_message(forged)  # quarantined as bad-signature: fine
    monkeypatch.setattr("ingest.validate.verify_signature", lambda *_: True)
    with pytest.raises(ContractError, match="not signed with 'hc-0001'"):
        validate_message(forged)


SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSONISH = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                       | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"v": st.sampled_from([1, 2, "1", None]),
                              "device_id": st.one_of(st.just("hc-0001"), JSONISH),
                              "ranges": st.one_of(st.lists(st.lists(JSONISH, max_size=3), max_size=4),
                                                  JSONISH),
                              "state": st.one_of(st.sampled_from(["online", "offline"]), JSONISH)}))
def test_json_shaped_acks_and_statuses(doc: dict) -> None:
    data = json.dumps(doc).encode()
    ack(data)
    status(data)
