"""The reading index: one pass over a History, shared by every small checker.

    ReadingIndex(history)   per key: the history index of its first generated, published,
                            broker_acked, ingest_acked and evicted event and its last publish;
                            its first stored event and its number of duplicate events; the
                            boots of every device; committed or not; the delivery mode

Committed or not
    A generated key is *committed* (it got a durable seq) when the history shows it left the
    device's memory: it was published, broker_acked, ingest_acked, evicted, stored or
    duplicated. Otherwise it is *uncommitted* when the device's next boot (the boot event with
    the smallest boot number above the key's) restored a next_seq <= seq, or, with no later
    boot, when the final outbox's next_seq (History.final_next_seq) is <= seq; with neither,
    it counts as committed. (`generated` is written before the outbox commit; a kill -9 in
    between leaves exactly this trace, and the next boot reuses the seq under a new boot epoch.)

Release event (when the mode lets a reading leave the outbox): fire-and-forget, its first
published event; broker-ack, its first broker_acked; end-to-end, its first ingest_acked.
The delivery mode is History.delivery, else inferred: any ingest_acked event → end-to-end;
else any QoS >= 1 publish → broker-ack; else fire-and-forget.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from ecgcore.modes import DELIVERY_MODES, Delivery
from lab.history import (
    Boot,
    BrokerAcked,
    Evicted,
    Generated,
    History,
    IngestAcked,
    Key,
    Published,
    Stored,
)


def infer_delivery(history: History) -> Delivery:
    """History.delivery, else inferred from the events (see the module docstring)."""
    if history.delivery in DELIVERY_MODES:
        return Delivery(history.delivery)
    if any(True for _ in history.events(IngestAcked)):
        return Delivery.END_TO_END
    if any(e.qos >= 1 for e in history.events(Published)):
        return Delivery.BROKER_ACK
    return Delivery.FIRE_AND_FORGET


class ReadingIndex:
    """Everything the checkers ask about a key, built once from the history (no I/O)."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.events = history.device_events
        self.mode = infer_delivery(history)
        # The history index of each key's first event of a kind (last, for publishes).
        self.generated: dict[Key, int] = {}
        self.published: dict[Key, int] = {}
        self.broker_acked: dict[Key, int] = {}
        self.ingest_acked: dict[Key, int] = {}
        self.evicted: dict[Key, int] = {}
        self.gens: dict[Key, Generated] = {}  # the first generated event
        self.last_publish: dict[Key, Published] = {}
        self.evictions: dict[Key, Evicted] = {}  # the first evicted event
        self.boots: dict[str, dict[int, Boot]] = {}
        self._scan_device_events()
        self.stored: dict[Key, Stored] = {}  # the first stored event
        for s in history.stored:
            self.stored.setdefault(s.key, s)
        self.duplicates: Counter[Key] = Counter(d.key for d in history.duplicates)
        self._next_boot: dict[tuple[str, int], Boot | None] = {}
        self.committed: dict[Key, bool] = {k: self._is_committed(k) for k in self.gens}
        # Every generated key, by device, then seq, then boot: the order of the outcomes.
        self.order: list[Key] = sorted(self.gens, key=lambda k: (k[0], k[2], k[1]))
        # Which committed key owns a (device, seq) in the final snapshot: the latest boot's.
        self.owner: dict[tuple[str, int], Key] = {(k[0], k[2]): k for k in self.order if self.committed[k]}
        self.release: dict[Key, int] = {
            Delivery.FIRE_AND_FORGET: self.published, Delivery.BROKER_ACK: self.broker_acked,
            Delivery.END_TO_END: self.ingest_acked,
        }[self.mode]
        self.devices: set[str] = self._devices()

    def _scan_device_events(self) -> None:
        for i, e in enumerate(self.events):
            if isinstance(e, Boot):
                self.boots.setdefault(e.dev, {}).setdefault(e.boot, e)
                continue
            k = (e.dev, e.boot, e.seq)
            if isinstance(e, Generated):
                if k not in self.generated:
                    self.generated[k] = i
                    self.gens[k] = e
            elif isinstance(e, Published):
                self.published.setdefault(k, i)
                self.last_publish[k] = e
            elif isinstance(e, BrokerAcked):
                self.broker_acked.setdefault(k, i)
            elif isinstance(e, IngestAcked):
                self.ingest_acked.setdefault(k, i)
            elif isinstance(e, Evicted) and k not in self.evicted:
                self.evicted[k] = i
                self.evictions[k] = e

    def _devices(self) -> set[str]:
        """Every device the history names anywhere."""
        h = self.history
        devices = set(self.boots)
        for index in (self.generated, self.published, self.broker_acked, self.ingest_acked,
                      self.evicted, self.stored):
            devices.update(k[0] for k in index)
        devices.update(d.dev for d in h.duplicates)
        devices.update(q.dev for q in h.quarantined if q.dev)
        for snap in (h.final_buffered, h.final_evicted, h.final_next_seq):
            if snap is not None:
                devices.update(snap)
        return devices

    def next_boot(self, dev: str, boot: int) -> Boot | None:
        """The device's boot with the smallest boot number above `boot`."""
        if (dev, boot) not in self._next_boot:
            boots = self.boots.get(dev, {})
            later = [b for b in boots if b > boot]
            self._next_boot[(dev, boot)] = boots[min(later)] if later else None
        return self._next_boot[(dev, boot)]

    def left_memory(self, key: Key) -> bool:
        """The history shows the key left the device's memory (so it is committed)."""
        return key in self.published or key in self.broker_acked or key in self.ingest_acked \
            or key in self.evicted or key in self.stored or key in self.duplicates

    def _is_committed(self, key: Key) -> bool:
        if self.left_memory(key):
            return True
        dev, boot, seq = key
        nxt = self.next_boot(dev, boot)
        if nxt is not None:
            return seq < nxt.next_seq
        final = self.history.final_next_seq
        if final is not None and dev in final:
            return seq < final[dev]
        return True

    def owns(self, key: Key, snap: Mapping[str, Any] | None) -> bool:
        """The key's seq is in the device's final snapshot `snap` and the key owns that seq."""
        return snap is not None and self.owner.get((key[0], key[2])) == key and key[2] in snap.get(key[0], ())

    def time(self, i: int) -> float:
        """The time of the device event at history index i."""
        return self.events[i].t
