"""The counts of a result: per device, and in total.

    count(index, outcomes, unexpected, reordered) -> (per device, totals)

Every device the history names gets its Counts, even with nothing generated. A quarantined
message whose topic names no device is counted in the totals only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

from lab.checker.index import ReadingIndex
from lab.checker.result import COUNT_FIELDS, Counts, ReadingOutcome
from lab.history import Key


class _Tally:
    """One device's counts while they are being added up."""

    def __init__(self) -> None:
        self.n: Counter[str] = Counter(dict.fromkeys(COUNT_FIELDS, 0))
        self.reasons: Counter[str] = Counter()
        self.causes: Counter[str] = Counter()

    def add(self, o: ReadingOutcome) -> None:
        self.n["generated"] += 1
        self.n["committed"] += int(o.committed)
        self.n[o.outcome] += 1
        if o.outcome == "stored":
            self.n["duplicated"] += int(o.duplicates > 0)
            self.n["recovered"] += int(o.recovered)
        elif o.outcome == "evicted":
            self.reasons[o.reason or ""] += 1
        elif o.outcome == "lost":
            self.causes[o.cause or ""] += 1

    def counts(self) -> Counts:
        return Counts(**{k: self.n[k] for k in COUNT_FIELDS}, evicted_by_reason=dict(self.reasons),
                      lost_by_cause=dict(self.causes), quarantined_by_reason={})


RATE_LIMITED = "rate-limited"  # ingest.store.RATE_LIMITED: refused by ingest's per-device rate limit


def count(ix: ReadingIndex, outcomes: Mapping[Key, ReadingOutcome], unexpected: Sequence[Key],
          reordered: Mapping[str, int]) -> tuple[dict[str, Counts], Counts]:
    """(Counts per device, sorted by device; the totals)."""
    history = ix.history
    per = {d: _Tally() for d in ix.devices}
    for key, o in outcomes.items():
        per[key[0]].add(o)
    for k in unexpected:
        per[k[0]].n["unexpected"] += 1
    dup_events = Counter(d.dev for d in history.duplicates)
    quarantined = Counter(q.dev for q in history.quarantined if q.dev)
    for d, tally in per.items():
        tally.n["duplicates"] = dup_events.get(d, 0)
        tally.n["reordered"] = reordered.get(d, 0)
        tally.n["quarantined"] = quarantined.get(d, 0)
    reasons: dict[str, Counter[str]] = {}
    for q in history.quarantined:
        reasons.setdefault(q.dev or "", Counter())[q.reason] += 1
    for dev, n in history.refused.items():  # refused by ingest's rate limit: counted, not kept
        reasons.setdefault(dev, Counter())[RATE_LIMITED] += n
        if dev in per:
            per[dev].n["quarantined"] += n
    devices = {d: replace(tally.counts(), quarantined_by_reason=dict(reasons.get(d, {})))
               for d, tally in sorted(per.items())}
    totals = Counts.total(devices.values())
    unattributed = reasons.get("", Counter())
    for dev, c in reasons.items():  # a device of no reading's (a made-up id): only in the totals
        if dev and dev not in per:
            unattributed = unattributed + c
    totals = replace(totals, quarantined=totals.quarantined + unattributed.total(),
                     quarantined_by_reason=dict(Counter(totals.quarantined_by_reason) + unattributed))
    return devices, totals
