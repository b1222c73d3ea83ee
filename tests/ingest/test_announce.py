"""ingest/announce.py: the retained status and the broker session's name."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.announce import Announcer
from wire import WireError, decode_service_status, encode_service_status


def names() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"n{next(counter)}"


def test_the_session_name_changes_only_when_the_broker_lost_the_session(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    a = Announcer(path, new_name=names())
    assert a.boot == "n1" and a.session is None
    assert a.connected(session_present=True) == "n2"  # never knew its name: a new one
    assert a.connected(session_present=True) == "n2"  # a reconnect, same session
    assert a.connected(session_present=False) == "n3"  # the broker lost it
    b = Announcer(path, new_name=names())  # a restart of ingest
    assert b.session == "n3" and b.connected(session_present=True) == "n3"
    assert b.connected(session_present=False) == "n2" and b.sessions_started == 1


def test_the_status_payloads_say_online_and_offline(tmp_path: Path) -> None:
    a = Announcer(tmp_path / "s.json")
    a.connected(session_present=False)
    online = decode_service_status(a.online(False, 1700000000.0))
    assert online["state"] == "online" and online["session"] == a.session and online["boot"] == a.boot
    assert online["session_present"] is False and online["service"] == "ingest"
    assert decode_service_status(a.offline(1700000001.0))["state"] == "offline"


@pytest.mark.parametrize("payload", [b"", b"{", b"[]", b'{"v": 2, "state": "online"}',
                                     b'{"v": 1, "state": "asleep", "boot": "b", "session": "s"}',
                                     b'{"v": 1, "state": "online", "boot": "b"}'])
def test_a_bad_service_status_is_refused(payload: bytes) -> None:
    with pytest.raises(WireError):
        decode_service_status(payload)


def test_encoding_checks_the_state() -> None:
    with pytest.raises(WireError, match="state"):
        encode_service_status("asleep", "b", "s", True, 0.0)
