from __future__ import annotations

from lab.history.brokerstats import DROPPED, summarize
from lab.stack.watch import parse_value


def test_dropped_sums_across_broker_restarts() -> None:
    recs = [
        {"t": 1, "incarnation": 0, "values": {DROPPED: 5}},
        {"t": 2, "incarnation": 0, "values": {DROPPED: 40, "store/messages/count": 900}},
        {"t": 3, "incarnation": 1, "values": {DROPPED: 0}},
        {"t": 4, "incarnation": 1, "values": {DROPPED: 7, "store/messages/count": 50}},
    ]
    s = summarize(recs)
    assert s["dropped"] == 47
    assert s["restarts_seen"] == 1
    assert s["stored_messages"] == 50 and s["stored_messages_peak"] == 900


def test_empty_history() -> None:
    assert summarize([])["dropped"] == 0


def test_parse_value() -> None:
    assert parse_value(b"57 seconds") == 57
    assert parse_value(b"12.5") == 12.5
    assert parse_value(b"mosquitto version 2.0.11") is None
