"""paho's Client with two batchings paho has no public API for: reads in large gulps and PUBACKs
in one packet write. Used only by ingest.subscriber (ingest's one paho adapter).

Reads. paho reads one packet per wake-up of its network thread, in three or four recv() calls
(the command byte, each remaining-length byte, the rest), and it reads one packet per select()
when nothing of its own is in flight (loop_read's max_packets is len(out_messages) +
len(in_messages), and manually acknowledged QoS 1 messages are in neither). Draining a backlog
of 550-byte readings is therefore ~5 system calls per reading. BufferedClient's `_sock_recv`
takes up to READ_CHUNK bytes from the socket at once and serves paho's small reads from that
buffer, and `loop_read` goes on while the buffer holds bytes (select() cannot see them). The
buffer belongs to one socket: a new connection starts empty.

PUBACKs. `Client.ack(mid)` queues one 4-byte packet and writes one wake-up byte to paho's
socketpair, so the network thread wakes and sends once per PUBACK. `ack_many(mids)` queues
the batch's PUBACKs as one packet: one wake-up byte and one send. paho writes queued packets
as they are and treats a PUBACK packet as nothing more than bytes to send (it keeps no state
for the PUBACKs it sends), so the concatenation is exactly the wire bytes of the single
acknowledgements, in the same order.

Both use paho 2.x private members (`_sock`, `_sock_recv`, `_packet_queue`); pinned by
pyproject's paho-mqtt>=2,<3 and checked by tests/ingest/test_paho_client.py against Mosquitto.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_CHUNK = 65_536
_PUBACK = 0x40  # MQTT control packet type 4, flags 0
_PUBACK_PACKET = struct.Struct("!BBH")  # type, remaining length 2, packet id


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._rsock: object = None
        self.reads = 0  # recv() calls on the socket (for the benchmark and tests)

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._sock is not self._rsock:  # a new connection: nothing buffered is its
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(max(bufsize, READ_CHUNK))  # BlockingIOError when empty
            self.reads += 1
            if len(data) <= bufsize:
                self._rbuf, self._rpos = b"", 0
                return data
            self._rbuf, self._rpos = data, 0
        out = self._rbuf[self._rpos:self._rpos + bufsize]
        self._rpos += len(out)
        return out

    def buffered(self) -> int:
        """Bytes read from the socket that paho has not taken yet."""
        return len(self._rbuf) - self._rpos if self._sock is self._rsock else 0

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self.buffered():
            rc = super().loop_read(max_packets)
        return rc

    def ack_many(self, mids: Sequence[int]) -> MQTTErrorCode:
        """PUBACK each QoS 1 message id, all in one queued packet (manual_ack must be on)."""
        if not mids:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        packet = b"".join(_PUBACK_PACKET.pack(_PUBACK, 2, mid) for mid in mids)
        return self._packet_queue(_PUBACK, packet, 0, 0)
