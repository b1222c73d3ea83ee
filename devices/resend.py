"""Which readings a device sends again, and when: the re-send policy. Pure (no I/O, no clock).

A reading is *in flight* from its first publish until the device lets go of it (broker-ack:
the PUBACK; end-to-end: the ingest service's confirmation). `InFlight` keeps, per reading in
flight, the send numbers of its first and latest copies (one counter per device, +1 per
publish), whether the broker PUBACKed the latest copy, and whether it is due to be sent again
and why. A copy is sent again only when it may really have been lost:

    no-puback            the connection dropped before the broker PUBACKed the latest copy
                         (it may never have reached the broker)
    session-lost         end-to-end: the CONNACK said session_present = false. The broker lost
                         its state (a restart without persistence, an expired session), so the
                         readings it held for ingest may be gone too
    ingest-session-lost  end-to-end: the ingest service announced a broker session the device
                         did not know (ingest/announce.py): what the broker held for ingest
                         before it is gone
    gap                  end-to-end: the ingest service confirmed a reading whose FIRST copy
                         was published after the LATEST copy of this one. One publisher's
                         messages reach one subscriber in the order they were published (MQTT
                         keeps the order of a client's QoS 1 messages on a topic, Mosquitto
                         keeps the subscriber's queue in order, ingest confirms in batches in
                         arrival order), so this one arrived first or never: the broker dropped
                         it after its PUBACK (a full queue) or lost it in a restart. This is
                         how the ingest service's view of its gaps reaches the device. Taking
                         the earliest copy of the confirmed reading and the latest copy of the
                         other makes the rule safe whichever copy was confirmed
    probe                the last resort. While ingest is online (or its status unknown) and
                         nothing is confirmed for a while, the NEWEST reading in flight is sent
                         again, after a delay that doubles from `probe_base` to `probe_cap`
                         with equal jitter, restarting at every confirmation, connect and
                         ingest-online. When everything a device had in flight was dropped
                         there is no later reading whose confirmation could reveal the gap;
                         the probe's confirmation does (its first copy is the newest), one
                         copy per backoff step instead of a window per timeout
    refused              the broker answered the PUBACK with a failure code: again after
                         min(cap, base * 2**(copies - 1)), not at once

Nothing here deletes a reading: the outbox does that, only on the mode's own signal.
Duplicates are the price of a re-send that was not needed; the ingest service stores each
reading once and confirms duplicates too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from devices.smallrng import UniformSource

NO_PUBACK = "no-puback"
SESSION_LOST = "session-lost"
INGEST_SESSION_LOST = "ingest-session-lost"
GAP = "gap"
PROBE = "probe"
REFUSED = "refused"
REASONS = (NO_PUBACK, SESSION_LOST, INGEST_SESSION_LOST, GAP, PROBE, REFUSED)


@dataclass
class Flight:
    """One reading in flight."""

    first: int  # send number of its first copy
    last: int  # send number of its latest copy
    broker_acked: bool = False  # the broker PUBACKed the latest copy
    copies: int = 1
    due: float = math.inf  # simulated monotonic time at which to send it again
    reason: str | None = None  # why it is due


class InFlight:
    """The readings one device has in flight, in the order of their latest copy."""

    def __init__(self, *, probe_base: float, probe_cap: float, rng: UniformSource) -> None:
        if not (0 < probe_base <= probe_cap):
            raise ValueError(f"probe delays must satisfy 0 < base <= cap, got {probe_base}, {probe_cap}")
        self.probe_base = probe_base
        self.probe_cap = probe_cap
        self._rng = rng
        self.sends = 0
        self.flights: dict[int, Flight] = {}
        self.probe_at = math.inf
        self._probe_step = 0
        self._next_due = math.inf  # a lower bound of the earliest due time
        self._n_due = 0  # flights with a due time

    def __len__(self) -> int:
        return len(self.flights)

    def __contains__(self, seq: int) -> bool:
        return seq in self.flights

    # --- what the device did --------------------------------------------------------------

    def sent(self, seq: int, now: float) -> None:
        """A copy of `seq` went out (its first, or a re-send)."""
        self.sends += 1
        flight = self.flights.pop(seq, None)
        if flight is None:
            if not self.flights:
                self.restart_probe(now)
            flight = Flight(first=self.sends, last=self.sends)
        else:
            flight.last = self.sends
            flight.copies += 1
            flight.broker_acked = False
            self._clear(flight)
        self.flights[seq] = flight  # re-inserted: the dict stays in order of latest copy

    def pop(self, seq: int) -> Flight | None:
        """`seq` is let go of (released or evicted)."""
        flight = self.flights.pop(seq, None)
        if flight is not None:
            self._clear(flight)
        return flight

    def broker_acked(self, seq: int, ok: bool, now: float) -> None:
        flight = self.flights.get(seq)
        if flight is None:
            return
        if ok:
            flight.broker_acked = True
        elif flight.due == math.inf:
            self._mark(flight, REFUSED, now + self.delay(flight.copies - 1, jitter=False))

    # --- what may have been lost ----------------------------------------------------------

    def connection_lost(self, now: float) -> int:
        """The connection dropped: copies without a PUBACK may never have reached the broker."""
        return self.mark([s for s, f in self.flights.items() if not f.broker_acked], NO_PUBACK, now)

    def session_lost(self, now: float) -> int:
        return self.mark(list(self.flights), SESSION_LOST, now)

    def ingest_session_changed(self, now: float) -> int:
        return self.mark(list(self.flights), INGEST_SESSION_LOST, now)

    def confirmed(self, seqs: Iterable[int], now: float) -> int:
        """The ingest service confirmed `seqs`: let go of them, then mark every reading whose
        latest copy went out before the earliest confirmed first copy (a gap). Returns how
        many were marked."""
        threshold = 0
        released = False
        for seq in seqs:
            flight = self.pop(seq)
            if flight is not None:
                threshold = max(threshold, flight.first)
                released = True
        if not released:
            return 0
        self.restart_probe(now)
        return self.mark([s for s, f in self.flights.items() if f.last < threshold], GAP, now)

    def mark(self, seqs: Iterable[int], reason: str, now: float) -> int:
        """Make these readings due at once (those already due keep their reason)."""
        n = 0
        for seq in seqs:
            flight = self.flights.get(seq)
            if flight is not None and flight.due > now:
                self._mark(flight, reason, now)
                n += 1
        return n

    def _mark(self, flight: Flight, reason: str, at: float) -> None:
        if flight.due == math.inf:
            self._n_due += 1
        flight.due, flight.reason = at, reason
        self._next_due = min(self._next_due, at)

    def _clear(self, flight: Flight) -> None:
        if flight.due < math.inf:
            self._n_due -= 1
            if not self._n_due:
                self._next_due = math.inf
        flight.due, flight.reason = math.inf, None

    # --- when to send -----------------------------------------------------------------------

    def due(self, now: float, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` readings due at `now`, oldest latest copy first, with their reasons."""
        if now < self.next_due or limit <= 0:
            return []
        out: list[tuple[int, str]] = []
        self._next_due = math.inf
        for seq, flight in self.flights.items():
            if flight.due <= now and len(out) < limit:
                out.append((seq, flight.reason or PROBE))
            self._next_due = min(self._next_due, flight.due)  # due until a copy goes out
        return out

    @property
    def next_due(self) -> float:
        """When the earliest re-send is due (at most that early: exact once `due()` ran)."""
        return self._next_due if self._n_due else math.inf

    def probe(self, now: float) -> bool:
        """If the probe is due, mark the newest reading in flight; True if it did."""
        if now < self.probe_at or not self.flights:
            return False
        if self._n_due:
            return False  # something is already going out again: that is the probe
        newest = next(reversed(self.flights))
        self._mark(self.flights[newest], PROBE, now)
        self._probe_step += 1
        self.probe_at = now + self.delay(self._probe_step)
        return True

    def restart_probe(self, now: float) -> None:
        """Progress (a confirmation, a connect, ingest back online): the probe waits again
        from the start of its backoff."""
        self._probe_step = 0
        self.probe_at = now + self.delay(0)

    def delay(self, step: int, *, jitter: bool = True) -> float:
        """min(cap, base * 2**step); with equal jitter, half of it fixed and half random."""
        d = min(self.probe_cap, self.probe_base * 2.0 ** min(step, 60))
        return d / 2 + self._rng.random() * d / 2 if jitter else d
