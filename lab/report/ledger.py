"""The ledger: every generated reading is stored, buffered, evicted or lost. Pure.

Sources of truth, one per term (docs/architecture.md):
  generated  the fleet's next_seq per device (seq runs 0..next_seq-1 across boots)
  stored     the ingest store's seq set per device
  buffered   the outbox's seq set per device
  evicted    the eviction log: seq → reason
The terms are made disjoint (stored wins over buffered, buffered over evicted), and only
"lost" is a remainder, so generated = stored + buffered + evicted + lost holds exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

FIELDS = ("generated", "stored", "duplicates", "buffered", "evicted", "lost")


@dataclass(frozen=True)
class DeviceLedger:
    generated: int
    stored: int
    duplicates: int
    buffered: int
    evicted: int
    lost: int
    evicted_by_reason: dict[str, int] = field(default_factory=dict)
    lost_seqs: tuple[int, ...] = ()
    unexpected: int = 0  # stored seqs the device never generated (Jepsen's "unexpected")

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {k: getattr(self, k) for k in FIELDS}
        d["evicted_by_reason"] = dict(self.evicted_by_reason)
        d["unexpected"] = self.unexpected
        return d


def device_ledger(generated: int, stored: set[int], buffered: set[int], evicted: Mapping[int, str],
                  duplicates: int = 0) -> DeviceLedger:
    gen = range(generated)
    s = {x for x in stored if 0 <= x < generated}
    b = {x for x in buffered if 0 <= x < generated} - s
    e = {x: r for x, r in evicted.items() if 0 <= x < generated and x not in s and x not in b}
    lost_seqs = tuple(x for x in gen if x not in s and x not in b and x not in e)
    lost = len(lost_seqs)  # = generated - stored - buffered - evicted: the sets are disjoint subsets of gen
    return DeviceLedger(
        generated=generated, stored=len(s), duplicates=duplicates, buffered=len(b), evicted=len(e),
        lost=lost, evicted_by_reason=dict(Counter(e.values())), lost_seqs=lost_seqs,
        unexpected=len(stored) - len(s),
    )


@dataclass(frozen=True)
class Ledger:
    devices: dict[str, DeviceLedger]

    @property
    def totals(self) -> dict[str, int]:
        return {k: sum(getattr(d, k) for d in self.devices.values()) for k in FIELDS}

    @property
    def evicted_by_reason(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for d in self.devices.values():
            c.update(d.evicted_by_reason)
        return dict(c)

    def balanced(self) -> bool:
        t = self.totals
        return t["generated"] == t["stored"] + t["buffered"] + t["evicted"] + t["lost"]


def build_ledger(generated: Mapping[str, int], stored: Mapping[str, set[int]],
                 buffered: Mapping[str, set[int]], evicted: Mapping[str, Mapping[int, str]],
                 duplicates: Mapping[str, int]) -> Ledger:
    ids = sorted(set(generated) | set(stored))
    return Ledger({
        d: device_ledger(generated.get(d, 0), stored.get(d, set()), buffered.get(d, set()),
                         evicted.get(d, {}), duplicates.get(d, 0))
        for d in ids
    })
