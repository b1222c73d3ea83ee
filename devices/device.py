"""One monitor's state machine: generate, persist, publish, let go. Pure: no paho, no sockets.

A `Device` is given its clock, its ECG stream, the fleet's outbox, a delivery mode and a
`Publisher` (in production, its MQTT link; in tests, a fake). The fleet calls, each tick:

    device.generate()   # every complete chunk of simulated time becomes a reading in the outbox
    outbox.commit()     # (the fleet, once for all devices)
    device.pump()       # publish what is committed and allowed

and forwards link events: `on_connected()`, `on_disconnected()`, `on_puback(mid, ok)`,
`on_ack(ranges)`.

Generation follows simulated time, not the loop: chunk k covers
[start + k*chunk_seconds, start + (k+1)*chunk_seconds) and is generated once that interval
has passed, with captured_at = start_wall + k*chunk_seconds. A late loop catches up
(at most `max_catchup` chunks; older ones are skipped, never assigned a seq).

Publishing. A reading goes out *live* (flags 0) if the device is connected and nothing
older is waiting to be sent; otherwise the outbox drains oldest-first, each reading
re-encoded with FLAG_BACKLOG. What is in flight is bounded by `window`.

Letting go (the delivery modes of docs/architecture.md):

    fire-and-forget  QoS 0; the row is deleted when the publisher accepts the publish
    broker-ack       QoS 1; the row is deleted at the PUBACK of its message id
    end-to-end       QoS 1; the row is deleted when an ack on heartcheck/<id>/ack covers
                     its seq; sent readings not acked within `ack_timeout` simulated
                     seconds are sent again

On disconnect every message id is forgotten and every unreleased row becomes unsent again;
after the next connect the outbox is re-sent from its oldest row.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Protocol

from devices.ecg_source import GAIN_UV, EcgStream
from devices.errors import ConfigError
from devices.outbox import Outbox
from devices.profile import PatientProfile
from ecgcore.clock import Clock
from wire import FLAG_BACKLOG, Reading, decode_reading, ecg_topic, encode_reading
from wire.reading import MAX_SAMPLE_RATE, MAX_SAMPLES


class Delivery(enum.StrEnum):
    FIRE_AND_FORGET = "fire-and-forget"
    BROKER_ACK = "broker-ack"
    END_TO_END = "end-to-end"

    @property
    def qos(self) -> int:
        return 0 if self is Delivery.FIRE_AND_FORGET else 1


class Publisher(Protocol):
    """Hands a message to the transport. Returns a message id, or None if it cannot."""

    def publish(self, topic: str, payload: bytes, qos: int) -> int | None: ...


@dataclass(frozen=True)
class DeviceConfig:
    """Settings shared by every device of a fleet."""

    delivery: Delivery
    chunk_seconds: float = 1.0
    sample_rate: int = 250
    ack_timeout: float = 10.0
    window: int = 50
    gain_uv: float = GAIN_UV
    max_catchup: int = 60  # chunks a late loop may generate at once before skipping ahead

    def __post_init__(self) -> None:
        object.__setattr__(self, "delivery", Delivery(self.delivery))
        if not 1 <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ConfigError(f"sample rate {self.sample_rate} Hz is not in 1..{MAX_SAMPLE_RATE}")
        if not (math.isfinite(self.chunk_seconds) and self.chunk_seconds > 0):
            raise ConfigError(f"chunk seconds must be positive, got {self.chunk_seconds}")
        if not 1 <= self.samples_per_chunk <= MAX_SAMPLES:
            raise ConfigError(
                f"a chunk of {self.chunk_seconds} s at {self.sample_rate} Hz is "
                f"{self.samples_per_chunk} samples; a reading carries 1..{MAX_SAMPLES}"
            )
        if not (math.isfinite(self.ack_timeout) and self.ack_timeout > 0):
            raise ConfigError(f"ack timeout must be positive, got {self.ack_timeout}")
        if self.window < 1:
            raise ConfigError(f"window must be at least 1, got {self.window}")
        if self.max_catchup < 1:
            raise ConfigError(f"max_catchup must be at least 1, got {self.max_catchup}")

    @property
    def samples_per_chunk(self) -> int:
        return round(self.chunk_seconds * self.sample_rate)


@dataclass
class DeviceStats:
    """Counters for logs and tests (not persisted; the outbox is the record)."""

    generated: int = 0
    published_live: int = 0
    published_backlog: int = 0
    resent: int = 0
    released: int = 0
    evicted: int = 0
    skipped_chunks: int = 0
    rejected_publishes: int = 0


class Device:
    """One simulated monitor. See the module docstring for the rules it follows."""

    def __init__(self, device_id: str, profile: PatientProfile, stream: EcgStream,
                 outbox: Outbox, publisher: Publisher, clock: Clock, config: DeviceConfig,
                 *, start_offset: float = 0.0) -> None:
        self.device_id = device_id
        self.profile = profile
        self.config = config
        self._stream = stream
        self._outbox = outbox
        self._publisher = publisher
        self._clock = clock
        self._topic = ecg_topic(device_id)
        self._qos = config.delivery.qos
        self.boot_epoch, self.next_seq = outbox.register(device_id, profile, clock.now())
        # chunk k covers [start + k*cs, start + (k+1)*cs) of simulated time
        self._start_mono = clock.monotonic() + start_offset
        self._start_wall = clock.now() + start_offset
        self._k = 0
        self.connected = False
        self._cursor = -1  # every outbox row with seq <= cursor is in _sent (or released)
        self._sent: dict[int, float] = {}  # seq -> monotonic deadline for a resend
        self._mids: dict[int, int] = {}  # message id -> seq (QoS 1, this connection)
        self._fresh: list[tuple[int, bytes]] = []  # generated this tick, not yet published
        self.stats = DeviceStats()

    # --- generation ---------------------------------------------------------------------

    @property
    def next_due(self) -> float:
        """Simulated monotonic time at which the next chunk is complete."""
        return self._start_mono + (self._k + 1) * self.config.chunk_seconds

    def generate(self) -> int:
        """Turn every chunk of simulated time that has passed into an outbox row."""
        now = self._clock.monotonic()
        cs = self.config.chunk_seconds
        if now < self.next_due:
            return 0
        complete = math.floor((now - self._start_mono) / cs + 1e-9)
        if complete - self._k > self.config.max_catchup:
            skip = complete - self._k - self.config.max_catchup
            self._k += skip
            self.stats.skipped_chunks += skip
        made = 0
        while self._k < complete:
            self._make_reading(self._start_wall + self._k * cs)
            self._k += 1
            made += 1
        return made

    def _make_reading(self, captured_at: float) -> None:
        cfg = self.config
        reading = Reading(
            device_id=self.device_id, boot_epoch=self.boot_epoch, seq=self.next_seq,
            captured_at=captured_at, sample_rate_hz=cfg.sample_rate, gain_uv=cfg.gain_uv,
            samples=self._stream.next_chunk(cfg.samples_per_chunk),
        )
        payload = encode_reading(reading)
        result = self._outbox.append(
            self.device_id, reading.seq, self.boot_epoch, captured_at, payload,
            self._clock.now(),
        )
        self.next_seq += 1
        self.stats.generated += 1
        if result.evicted_seq is not None:
            self.stats.evicted += 1
            self._sent.pop(result.evicted_seq, None)
            self._fresh = [f for f in self._fresh if f[0] != result.evicted_seq]
        if result.stored:
            self._fresh.append((reading.seq, payload))

    # --- publishing ---------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Readings sent and not yet released (PUBACK or ack)."""
        return len(self._sent)

    @property
    def unsent(self) -> int:
        """Outbox rows not sent on the current connection."""
        return self._outbox.count(self.device_id) - len(self._sent)

    def pump(self) -> int:
        """Publish what the window allows: due re-sends first, then unsent rows oldest-first."""
        fresh, self._fresh = self._fresh, []
        if not self.connected:
            return 0
        now = self._clock.monotonic()
        sent = self._resend_due(now)
        room = self.config.window - len(self._sent)
        unsent = self.unsent
        if room <= 0 or unsent <= 0:
            return sent
        if fresh and unsent == len(fresh):
            # nothing older is waiting: these go out live, from memory
            return sent + self._send(fresh[:room], live=True, now=now)
        if room < min(unsent, max(1, self.config.window // 4)):
            return sent  # refill the backlog in batches, not one query per freed slot
        rows = self._outbox.pending(self.device_id, limit=room, after_seq=self._cursor)
        return sent + self._send(rows, live=False, now=now)

    def _resend_due(self, now: float) -> int:
        due = [seq for seq, deadline in self._sent.items() if deadline <= now]
        if not due:
            return 0
        payloads = self._outbox.payloads(self.device_id, due)
        for seq in due:
            if seq not in payloads:
                del self._sent[seq]  # evicted or released meanwhile
        rows = [(seq, payloads[seq]) for seq in due if seq in payloads]
        n = self._send(rows, live=False, now=now)
        self.stats.resent += n
        return n

    def _send(self, rows: list[tuple[int, bytes]], *, live: bool, now: float) -> int:
        accepted: list[int] = []
        for seq, payload in rows:
            wire = payload if live else encode_reading(decode_reading(payload), flags=FLAG_BACKLOG)
            mid = self._publisher.publish(self._topic, wire, self._qos)
            if mid is None:
                self.stats.rejected_publishes += 1
                break
            accepted.append(seq)
            self._cursor = max(self._cursor, seq)
            if self.config.delivery is Delivery.FIRE_AND_FORGET:
                continue
            self._mids[mid] = seq
            self._sent.pop(seq, None)  # re-insert: _sent stays ordered by send time
            self._sent[seq] = (
                now + self.config.ack_timeout
                if self.config.delivery is Delivery.END_TO_END
                else math.inf  # broker-ack waits for the PUBACK or the disconnect
            )
        if live:
            self.stats.published_live += len(accepted)
        else:
            self.stats.published_backlog += len(accepted)
        if self.config.delivery is Delivery.FIRE_AND_FORGET:
            self.stats.released += self._outbox.delete(self.device_id, accepted)
        else:
            self._outbox.mark_sent(self.device_id, accepted, self._clock.now())
        return len(accepted)

    # --- link events --------------------------------------------------------------------

    def on_connected(self) -> None:
        """A new connection: everything still in the outbox is unsent on it."""
        self.connected = True
        self._forget()

    def on_disconnected(self) -> None:
        self.connected = False
        self._forget()

    def _forget(self) -> None:
        self._cursor = -1
        self._sent.clear()
        self._mids.clear()

    def on_puback(self, mid: int, ok: bool = True) -> None:
        """The broker acknowledged a QoS 1 publish (ok=False: with a failure reason code)."""
        seq = self._mids.pop(mid, None)
        if seq is None or seq not in self._sent:
            return
        if not ok:
            self._sent[seq] = self._clock.monotonic() + self.config.ack_timeout
        elif self.config.delivery is Delivery.BROKER_ACK:
            del self._sent[seq]
            self.stats.released += self._outbox.delete(self.device_id, [seq])

    def on_ack(self, ranges: list[tuple[int, int]]) -> int:
        """The ingest service confirmed these seq ranges as stored. Returns rows released."""
        if self.config.delivery is not Delivery.END_TO_END or not ranges:
            return 0
        for seq in [s for s in self._sent if any(a <= s <= b for a, b in ranges)]:
            del self._sent[seq]
        n = self._outbox.delete_ranges(self.device_id, ranges)
        self.stats.released += n
        return n
