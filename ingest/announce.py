"""What the ingest service tells the devices about itself: a retained status on
wire.INGEST_STATUS_TOPIC, so that end-to-end devices re-send only what may really be lost.

    online   published (retained, QoS 1) right after every connect's SUBSCRIBE, naming this
             process (`boot`) and the broker session it is using (`session`)
    offline  the connection's Last Will (the broker publishes it when the link dies or the
             service stops answering keepalives), and published explicitly on a clean stop

The session name is the point. The broker queues readings for ingest in ingest's session; when
the broker does not have that session any more (session_present false on connect: the first
connect, a broker restart without persistence, an expired session), every reading published
for ingest before then and not delivered is gone, though each device got its PUBACK. So the
name changes exactly then and survives everything else, ingest restarts included: it is kept
in DIR/ingest/session.json. A device that sees a name it did not know re-sends what it had
in flight (docs/architecture.md, "Re-sending only what may be lost").

The SUBSCRIBE is sent before the status on the same connection, and the broker handles a
connection's packets in order, so the subscription exists before any device can act on the
status: what a device re-sends after it is queued for ingest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from ecgcore.files import read_json, write_json_atomic
from wire import encode_service_status

SESSION_NAME = "session.json"


def random_name() -> str:
    """A fresh name for a process or a session: 12 hex digits of a random UUID."""
    return uuid.uuid4().hex[:12]


class Announcer:
    """The status payloads of one ingest process, and its session's name."""

    def __init__(self, path: Path | None, *, new_name: Callable[[], str] = random_name,
                 key: bytes | None = None) -> None:
        self._path = path
        self._key = key  # signs both payloads (wire.status.status_key); None: unsigned
        self._new_name = new_name
        self.boot = new_name()
        doc = read_json(path) if path is not None else None
        known = doc.get("session") if isinstance(doc, dict) else None
        self.session: str | None = known if isinstance(known, str) and known else None
        self.sessions_started = 0

    def connected(self, session_present: bool) -> str:
        """Record a CONNACK: a new session name when the broker had none for us (or we never
        knew its name). Returns the name in use."""
        if not session_present or self.session is None:
            self.session = self._new_name()
            self.sessions_started += 1
            if self._path is not None:
                write_json_atomic(self._path, {"session": self.session})
        return self.session

    def online(self, session_present: bool, at: float) -> bytes:
        return encode_service_status("online", self.boot, self.session or "", session_present, at,
                                     self._key)

    def offline(self, at: float) -> bytes:
        return encode_service_status("offline", self.boot, self.session or "", True, at, self._key)
