"""A per-device rate limit at ingest: a token bucket per device, in the service's clock.

    limiter = RateLimit(rate=20.0, burst=5000)
    limiter.allow(device_id, now) -> bool     one message of that device, at `now` (seconds)
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


@dataclass
class RateLimit:
    rate: float  # messages per second (of the service's clock) per device, sustained
    burst: float  # messages a device may send at once
    max_devices: int = MAX_DEVICES
    refused: Counter[str] = field(default_factory=Counter)
    forgotten: int = 0
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)  # tokens, at

    def __post_init__(self) -> None:
        if not self.rate > 0 or not self.burst >= 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst ≥ 1, got {self.rate}, {self.burst}")

    def allow(self, device_id: str, now: float) -> bool:
        tokens, at = self._buckets.pop(device_id, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        ok = tokens >= 1.0
        if ok:
            tokens -= 1.0
        else:
            self.refused[device_id] += 1
        self._buckets[device_id] = (tokens, now)
        if len(self._buckets) > self.max_devices:
            self._buckets.popitem(last=False)
            self.forgotten += 1
        return ok
