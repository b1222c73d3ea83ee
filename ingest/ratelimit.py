"""A per-device rate limit at ingest: token buckets per device, in the service's clock.

    limiter = RateLimit(rate=20.0, burst=5000)
    limiter.allow(device_id, now, size) -> bool   one message of `size` bytes of that device

Two buckets per device: messages (rate, burst) and bytes (BYTES_PER_MESSAGE times each). An
honest reading is about 550 bytes (a 1-s chunk at 250 Hz) and a whole 30-s strip at 250 Hz
15 KB, so the byte bucket never binds them; a flood of payloads near the broker's size limit
(65,675 bytes) is refused after a few hundred, not after `burst` of them, before its writes
to the quarantine make ingest fall behind and the broker drop other devices' readings.
    limiter.refused -> {device_id: count}     what was refused, by device (bounded: see below)

A flood from one device (a compromised device, a stuck loop) is refused once its bucket is
empty, before anything is decoded or stored, so it costs ingest little and cannot fill the store
or the quarantine; every other device keeps its own bucket. An honest device never comes near:
it makes one reading per chunk, and the burst holds a whole outbox's backlog (the default
outbox capacity), so a device catching up after an outage is not refused. What is refused is
never confirmed: an end-to-end device sends it again later.

Buckets live for the devices seen; at most MAX_DEVICES of them (then the least recently seen is
forgotten and counted in `forgotten`), so topics made up by the thousand cannot grow memory.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

MAX_DEVICES = 100_000
BYTES_PER_MESSAGE = 2048  # the byte bucket's rate and burst, per message of the message bucket's


@dataclass
class RateLimit:
    rate: float  # messages per second (of the service's clock) per device, sustained
    burst: float  # messages a device may send at once
    max_devices: int = MAX_DEVICES
    refused: Counter[str] = field(default_factory=Counter)
    forgotten: int = 0
    # messages, bytes, at
    _buckets: OrderedDict[str, tuple[float, float, float]] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if not self.rate > 0 or not self.burst >= 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst ≥ 1, got {self.rate}, {self.burst}")

    def allow(self, device_id: str, now: float, size: int = 0) -> bool:
        per_byte = BYTES_PER_MESSAGE
        tokens, octets, at = self._buckets.pop(device_id, (self.burst, self.burst * per_byte, now))
        elapsed = max(0.0, now - at)
        tokens = min(self.burst, tokens + elapsed * self.rate)
        octets = min(self.burst * per_byte, octets + elapsed * self.rate * per_byte)
        ok = tokens >= 1.0 and octets >= size
        if ok:
            tokens -= 1.0
            octets -= size
        else:
            self.refused[device_id] += 1
        self._buckets[device_id] = (tokens, octets, now)
        if len(self._buckets) > self.max_devices:
            self._buckets.popitem(last=False)
            self.forgotten += 1
        return ok
