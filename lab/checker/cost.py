"""What delivery cost: copies sent per reading, re-sends by reason, duplicates by origin, and the
broker's backlog beside the device outboxes'. Pure, over the history.

    sent                  every `published` event (each copy a device handed to the network)
    first / resent        copies without / with a re-send reason (devices/resend.py); a device
                          that rebooted sends its outbox again as first copies of that boot
    amplification         sent / generated (the generated readings the checker classifies)
    sent_per_stored       sent / stored
    resent_by_reason      no-puback, session-lost, ingest-session-lost, gap, probe, refused
    duplicates_by_origin  each duplicate the ingest service stored, by where its extra copy came
                          from: "device-resend" when the device published that reading more than
                          once, else "broker-redelivery" (the broker delivered one publish twice:
                          an ingest restart before its PUBACK reached the broker)
    outbox_at_broker_hwm  the device outboxes' highest total between the $SYS sample before the
                          broker's high-water mark and it (the broker reports its count once a
                          real second, a long time under compression)
    broker_over_outbox    broker_hwm / max(outbox_at_broker_hwm, floor): above 1, the broker held
                          more copies than there were readings still to deliver (re-sends
                          inflating it). The broker's count also holds whatever is in flight at
                          the sample (acks to each device, readings to ingest, $SYS), so below
                          floor = max(NOISE_FLOOR, NOISE_PER_DEVICE × devices) outbox readings
                          the floor is the yardstick
"""

from __future__ import annotations

import bisect
from collections import Counter

from lab.checker.measures import Series
from lab.checker.result import Backlog, Cost
from lab.history import History, Key, Published

NOISE_FLOOR = 100.0  # messages: below this the broker's count is mostly what is in flight
NOISE_PER_DEVICE = 3.0  # ... and a few acks per device may be in flight to it at any moment
DEVICE_RESEND = "device-resend"
BROKER_REDELIVERY = "broker-redelivery"


def cost(history: History, generated: int, stored: int, outbox: Series, backlog: Backlog,
         devices: int = 0) -> Cost:
    copies: Counter[Key] = Counter()
    reasons: Counter[str] = Counter()
    for ev in history.events(Published):
        copies[ev.key] += 1
        if ev.resend:
            reasons[ev.resend] += 1
    sent = sum(copies.values())
    resent = sum(reasons.values())
    origins = Counter(DEVICE_RESEND if copies[d.key] > 1 else BROKER_REDELIVERY
                      for d in history.duplicates)
    at_hwm = None if backlog.broker_hwm_at is None else _highest(outbox, history, backlog.broker_hwm_at)
    ratio = None
    if backlog.broker_hwm is not None and at_hwm is not None:
        floor = max(NOISE_FLOOR, NOISE_PER_DEVICE * devices)
        ratio = round(backlog.broker_hwm / max(at_hwm, floor), 3)
    return Cost(sent=sent, first=sent - resent, resent=resent,
                amplification=round(sent / generated, 4) if generated else None,
                sent_per_stored=round(sent / stored, 4) if stored else None,
                resent_by_reason=dict(sorted(reasons.items())),
                duplicates_by_origin=dict(sorted(origins.items())),
                outbox_at_broker_hwm=at_hwm, broker_over_outbox=ratio)


def _highest(outbox: Series, history: History, t: float) -> float:
    """The outboxes' highest level in (the broker sample before t, t]."""
    before = [s.t for s in history.broker if s.t < t]
    since = max(before) if before else t
    i = bisect.bisect_right(outbox.times, since)
    j = bisect.bisect_right(outbox.times, t)
    return max([outbox.at(since), *outbox.values[i:j]])
