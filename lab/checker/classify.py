"""The outcome of every generated reading, and the cause of every loss.

    classify(index, windows, drops, grace_s) -> Classified   outcomes, losses, uncommitted
    BrokerDrops(samples)                                      when the broker's dropped counter rose

Outcomes (disjoint; the first that applies wins, in this order, as in lab/report/ledger.py)
    stored     a stored event exists for the key.
               duplicated: stored, and >= 1 duplicate event for the key (counted as readings;
               `duplicates` counts the duplicate events themselves).
               recovered: stored although the device never saw the confirmation its mode waits
               for: broker-ack, no broker_acked event; end-to-end, no ingest_acked event.
               Fire-and-forget waits for nothing, so it recovers nothing.
    lost       uncommitted (cause device-crash-before-persisting; see "The identity" in
               lab/checker/compose.py).
    buffered   still in the outbox at the end: its seq is in History.final_buffered[device]
               (the seq belongs to the device's latest committed key with that seq). Without a
               final snapshot (final_buffered is None), reconstructed: committed, no release
               event (lab/checker/index.py) and no evicted event.
    evicted    an evicted event for the key, or its seq in History.final_evicted[device];
               the reason is the event's (else the snapshot's).
    lost       everything else, with the first cause that applies:
      broker-queue-overflow          broker_acked at time A, delivery not end-to-end, and the
                                     broker's dropped counter increased at a $SYS sample taken
                                     in [A, R), R = the start of the first broker restart
                                     without persistence at or after A (no such restart: R = inf).
      broker-restart-no-persistence  broker_acked at A, delivery not end-to-end, and a broker
                                     restart without persistence started at or after A (it
                                     took the queue), or A lies in such a restart's effective
                                     interval (lab/checker/windows.py): the restart also took
                                     the subscriber's session, and a PUBACKed reading with no
                                     subscription to go to is discarded until ingest is seen
                                     receiving again.
                                     A restart without persistence is a fault window on target
                                     "broker" whose fault is "restart-no-persistence", or whose
                                     fault is kill / term / restart with persistence False (the
                                     window's own flag, else History.broker_persistence).
      broker-crash-before-snapshot   broker_acked at A, delivery not end-to-end, neither of the
                                     above, and a kill -9 of a broker *with* persistence started
                                     at or after A: Mosquitto's persistence is a snapshot every
                                     autosave_interval (2 s in broker_config/), so what it had
                                     acknowledged since the last snapshot is gone (measured:
                                     every reading of a 90-s queue at 60x, all within 2 real s).
      broker-crash-lost-session      broker_acked at A, delivery not end-to-end, none of the
                                     above apply first, and A lies after a kill -9 of a broker
                                     with persistence and before ingest was seen receiving
                                     again, with no later crash before then: the snapshot the
                                     broker restarted from did not hold ingest's session (it was
                                     older than the subscription, e.g. Mosquitto's default 1800 s
                                     autosave_interval), so the restarted broker had no
                                     subscription to queue it for and discarded it after the
                                     PUBACK. Tied to that crash's window (scenario
                                     broker-durability: 488 readings at 20x, 10 devices, all of
                                     them "broker-crash-before-snapshot" of the next crash before).
      qos0-link-down                 its last publish was at QoS 0 and that publish time lies in
                                     the effective interval (lab/checker/windows.py) of any
                                     fault window.
      forged-ack                     end-to-end: the device let go of it on a confirmation
                                     (ingest_acked), but ingest never stored it. Ingest confirms
                                     only what it has committed, so the confirmation was not
                                     ingest's: a forgery (an `--insecure` stack, unsigned acks).
      unexplained                    anything else: e.g. QoS 0 with no fault around it, published
                                     at QoS 1 and neither acked nor buffered, or (end-to-end) let
                                     go of without an ingest_acked.
A loss is tied to the fault window lab/checker/windows.py names.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import NamedTuple

from ecgcore.modes import Delivery
from lab.checker.index import ReadingIndex
from lab.checker.result import (
    CRASH,
    FORGED_ACK,
    LOST_SESSION,
    OVERFLOW,
    QOS0,
    RESTART,
    SNAPSHOT,
    UNEXPLAINED,
    Loss,
    ReadingOutcome,
)
from lab.checker.windows import FaultWindows, crash_window
from lab.history import BrokerSample, FaultWindow, Key, Published


class BrokerDrops:
    """The times the broker's dropped counter rose (per incarnation, from 0) and its total."""

    def __init__(self, samples: Sequence[BrokerSample]) -> None:
        self.times: list[float] = []
        last: dict[int, float] = {}
        for s in sorted(samples, key=lambda s: s.t):
            if s.dropped is None:
                continue
            if s.dropped > last.get(s.incarnation, 0.0):
                self.times.append(s.t)
            last[s.incarnation] = s.dropped
        self.total = int(sum(last.values()))

    def between(self, lo: float, hi: float) -> bool:
        """The counter rose at a sample taken in [lo, hi)."""
        i = bisect.bisect_left(self.times, lo)
        return i < len(self.times) and self.times[i] < hi


class Classified(NamedTuple):
    outcomes: dict[Key, ReadingOutcome]  # every generated key, in ReadingIndex.order
    losses: list[Loss]
    uncommitted: list[Key]


def classify(ix: ReadingIndex, fw: FaultWindows, drops: BrokerDrops, grace_s: float) -> Classified:
    """The outcome of every generated reading (the rules in the module docstring)."""
    out = Classified({}, [], [])
    for key in ix.order:
        outcome, loss = _reading(ix, fw, drops, grace_s, key)
        out.outcomes[key] = outcome
        if loss is not None:
            out.losses.append(loss)
        if not outcome.committed:
            out.uncommitted.append(key)
    return out


def _reading(ix: ReadingIndex, fw: FaultWindows, drops: BrokerDrops, grace_s: float,
             key: Key) -> tuple[ReadingOutcome, Loss | None]:
    if key in ix.stored:
        mode = ix.mode
        recovered = (mode is Delivery.BROKER_ACK and key not in ix.broker_acked) or \
                    (mode is Delivery.END_TO_END and key not in ix.ingest_acked)
        return ReadingOutcome(key, "stored", duplicates=ix.duplicates.get(key, 0),
                              recovered=recovered), None
    if not ix.committed[key]:
        return _crash(ix, fw, grace_s, key)
    kept = _kept(ix, key)
    if kept is not None:
        return kept, None
    return _lost(ix, fw, drops, key)


def _crash(ix: ReadingIndex, fw: FaultWindows, grace_s: float,
           key: Key) -> tuple[ReadingOutcome, Loss]:
    """An uncommitted reading: lost, tied to the fleet fault that crashed it, if any."""
    g = ix.gens[key]
    nxt = ix.next_boot(key[0], key[1])
    w = crash_window(fw.windows, g.t, math.inf if nxt is None else nxt.t, grace_s) or fw.containing(g.t)
    wid = w.id if w else None
    return (ReadingOutcome(key, "lost", committed=False, cause=CRASH, window=wid),
            Loss(key, CRASH, wid, g.t))


def _kept(ix: ReadingIndex, key: Key) -> ReadingOutcome | None:
    """Buffered or evicted, else None."""
    h = ix.history
    if h.final_buffered is not None:
        buffered = ix.owns(key, h.final_buffered)
    else:
        buffered = key not in ix.release and key not in ix.evicted
    if buffered:
        return ReadingOutcome(key, "buffered")
    if key in ix.evictions:
        return ReadingOutcome(key, "evicted", reason=ix.evictions[key].reason)
    if h.final_evicted is not None and ix.owns(key, h.final_evicted):
        return ReadingOutcome(key, "evicted", reason=h.final_evicted[key[0]][key[2]])
    return None


def _lost(ix: ReadingIndex, fw: FaultWindows, drops: BrokerDrops,
          key: Key) -> tuple[ReadingOutcome, Loss]:
    """A committed reading neither stored, buffered nor evicted: its cause and window."""
    g = ix.gens[key]
    last_pub = ix.last_publish.get(key)
    pub_window = fw.containing(last_pub.t) if last_pub is not None else None
    cause = _cause(ix, fw, drops, key, last_pub, pub_window)
    t_ref, w = (last_pub.t, pub_window) if last_pub is not None else (g.t, None)
    if cause == SNAPSHOT:  # the loss is the crash's, whatever window the publish fell in
        w = fw.next_crash(ix.time(ix.broker_acked[key]))
    elif cause == LOST_SESSION:  # the crash before it took the subscription it was queued for
        w = fw.crash_before(ix.time(ix.broker_acked[key]))
    if w is None and (w := fw.containing(g.t)) is not None:
        t_ref = g.t
    wid = w.id if w else None
    return ReadingOutcome(key, "lost", cause=cause, window=wid), Loss(key, cause, wid, t_ref)


def _broker_cause(fw: FaultWindows, drops: BrokerDrops, acked_at: float) -> str:
    """Why a reading the broker acknowledged at `acked_at` never reached the store."""
    restart = fw.next_restart(acked_at)
    if drops.between(acked_at, math.inf if restart is None else restart):
        return OVERFLOW
    if restart is not None or fw.in_restart(acked_at):
        return RESTART
    after, nxt = fw.crash_before(acked_at), fw.next_crash(acked_at)
    if after is not None and (nxt is None or nxt.start > fw.restored_until(after)):
        return LOST_SESSION
    return SNAPSHOT if nxt is not None else UNEXPLAINED


def _cause(ix: ReadingIndex, fw: FaultWindows, drops: BrokerDrops, key: Key,
           last_pub: Published | None, pub_window: FaultWindow | None) -> str:
    if key in ix.broker_acked and ix.mode is not Delivery.END_TO_END:
        return _broker_cause(fw, drops, ix.time(ix.broker_acked[key]))
    if ix.mode is Delivery.END_TO_END and key in ix.ingest_acked:
        return FORGED_ACK
    if last_pub is not None and last_pub.qos == 0 and pub_window is not None:
        return QOS0
    return UNEXPLAINED
