"""The fuzz targets (fuzz/targets.py) in the suite: the regression corpus (tests/fuzz_corpus/,
inputs atheris and reviews found worth keeping: deep JSON nesting, booleans as seq ranges,
truncations, a wrong version) and hypothesis strategies (random bytes, mutated valid payloads,
JSON-shaped acks and statuses). A target raises only on a crash; the documented refusals
(WireError, Quarantined) are not crashes. The coverage-guided run is `python -m fuzz`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.targets import TARGETS, ack, reading, status, validate_message
from tests.ingest.conftest import payload_of
from wire import WireError
from wire.acks import decode_ack

CORPUS = Path(__file__).parent / "fuzz_corpus"
VALID = payload_of("hc-0001", 3)


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
def mutated(draw: st.DrawFn) -> bytes:
    """A valid reading with a few bytes flipped, cut, or inserted."""
    data = bytearray(VALID)
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
