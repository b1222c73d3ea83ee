"""One monitor's state machine: generate, persist, publish, let go. Pure: no paho, no sockets.

A `Device` is given its clock, its ECG stream, the fleet's outbox, a delivery mode and a
`Publisher` (in production, its MQTT link; in tests, a fake). The fleet calls, each tick:

    device.generate()   # every complete chunk of simulated time becomes a reading in the outbox
    outbox.commit()     # (the fleet, once for all devices)
    device.pump()       # publish what is committed and allowed

and forwards link events: `on_connected()`, `on_disconnected()`, `on_puback(mid, ok)`,
`on_ack(ranges)`.

Generation follows simulated time, not the loop. Two recording modes:

    continuous  chunk k covers [start + k*chunk_seconds, start + (k+1)*chunk_seconds) and
                is generated once that interval has passed, with
                captured_at = start_wall + k*chunk_seconds. A late loop catches up (at most
                `max_catchup` chunks; older ones are skipped, never assigned a seq).
    strip       the device records `strip_seconds` of ECG at the times of its
                `StripSchedule` (devices/schedule.py: `strips_per_day` per UTC day, seeded
                per device). A strip is generated once it is complete: `strip_chunks`
                readings with consecutive seqs, generated together (so they share one
                outbox commit: a strip is in the outbox whole or not at all), each naming
                it with strip_id = (seq of its first chunk) + 1, chunk = 0..N-1, chunks = N.
                Chunk i's captured_at is the time of its own first sample (chunk 0: the
                strip's start). A late loop (or a long sleep under time compression)
                records every strip that fell due; `max_catchup` then counts whole strips,
                never chunks, so a strip is never cut. Only strips beyond that many are
                skipped (no seq used). The first strip of a boot is the first one that
                starts at or after the boot (a strip that started while the device was off
                is not recorded).

Samples. A reading's samples are the stream's at the absolute sample numbers of its capture
time (n = captured_at * sample_rate, consecutive from chunk to chunk), so a device's signal
at a given time is the same after a restart (devices/ecg_source.py). A reading with a
lead-off stretch carries FLAG_LEAD_OFF; the truth segments the stream meets for the first
time go to the history just before the reading's `generated` line.

Publishing. A reading goes out *live* (no FLAG_BACKLOG) if the device is connected and nothing
older is waiting to be sent; otherwise the outbox drains oldest-first, each reading
re-encoded with FLAG_BACKLOG added to its own flags. What is in flight is bounded by `window`. With
`backlog_pace` set, backlog sends and re-sends together take at most that many readings per
simulated second per device (a token bucket one second deep), so a fleet coming back from an
outage does not flush everything at once; live readings are never paced.

Letting go (the delivery modes of docs/architecture.md):

    fire-and-forget  QoS 0; the row is deleted when the publisher accepts the publish
    broker-ack       QoS 1; the row is deleted at the PUBACK of its message id
    end-to-end       QoS 1; the row is deleted when an ack on heartcheck/<id>/ack covers
                     its seq. A reading in flight is sent again only when a copy may have
                     been lost (devices/resend.py: no PUBACK before the link dropped, a lost
                     broker session, a new ingest session, a gap in ingest's confirmations,
                     or the last-resort probe after `ack_timeout` REAL seconds doubling to
                     `resend_cap`; real because a round trip does not shrink under time
                     compression, kept as × clock.speed simulated seconds). Nothing is sent
                     while the ingest service's status says offline, and after it comes back
                     the device resumes at a random moment with a small congestion window
                     (devices/flow.py)

History. Every step above is recorded on the injected `DeviceHistory` (devices/history.py):
`boot` at construction, `generated` just before the outbox append (the fleet flushes the
history before it commits), `evicted` for what the append evicted, `published` for every
accepted publish (live or backlog, first send or re-send), `broker_acked` for every
successful PUBACK of a known message id, `ingest_acked` once per row an end-to-end ack
deleted. Events carry the reading's own boot epoch.

On disconnect every message id is forgotten, and what the broker had not PUBACKed is due
again (broker-ack: everything in flight); after the next connect those go first, then the
unsent rows oldest-first.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from devices.ecg_source import GAIN_UV, EcgStream
from devices.errors import ConfigError
from devices.flow import RESUME_SPREAD, CongestionWindow
from devices.history import DeviceHistory, NoHistory
from devices.outbox import Outbox
from devices.profile import PatientProfile
from devices.resend import InFlight
from devices.schedule import StripSchedule
from devices.smallrng import SplitMix, UniformSource
from ecgcore.clock import Clock
from ecgcore.modes import RECORDINGS, Delivery, Recording
from wire import FLAG_BACKLOG, Reading, decode_reading, ecg_topic, encode_reading
from wire.reading import FLAG_LEAD_OFF, MAX_SAMPLE_RATE, MAX_SAMPLES


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
    max_catchup: int = 60  # chunks (strip mode: whole strips) a late loop may generate at once
    recording: Recording = Recording.CONTINUOUS
    strip_seconds: float = 30.0
    strips_per_day: int = 3
    strip_chunks: int = 1
    resend_cap: float = 300.0  # end-to-end: the probe's longest wait, real seconds (devices/resend.py)
    backlog_pace: float | None = None  # backlog readings per simulated second (None: unpaced)
    record_until: float | None = None  # simulated Unix time: nothing ending later is recorded

    def __post_init__(self) -> None:
        object.__setattr__(self, "delivery", Delivery(self.delivery))
        if self.backlog_pace is not None and not (
                math.isfinite(self.backlog_pace) and self.backlog_pace > 0):
            raise ConfigError(f"backlog pace must be more than 0 readings/s, got {self.backlog_pace}")
        if self.recording not in RECORDINGS:
            raise ConfigError(f"recording {self.recording!r} is not one of {RECORDINGS}")
        object.__setattr__(self, "recording", Recording(self.recording))
        if self.recording is Recording.STRIP:
            self._check_strips()
        self._check_limits()

    def _check_strips(self) -> None:
        StripSchedule(0, self.strips_per_day, self.strip_seconds)  # validates both
        if not 1 <= self.strip_chunks <= 65_535:
            raise ConfigError(f"strip chunks must be in 1..65535, got {self.strip_chunks}")
        total = self.samples_per_strip
        if not self.strip_chunks <= total:
            raise ConfigError(f"a strip of {total} samples cannot be cut into "
                              f"{self.strip_chunks} chunks")
        if math.ceil(total / self.strip_chunks) > MAX_SAMPLES:
            raise ConfigError(
                f"a strip of {self.strip_seconds:g} s at {self.sample_rate} Hz in "
                f"{self.strip_chunks} chunk(s) makes readings of more than {MAX_SAMPLES} "
                "samples; use more --strip-chunks")

    def _check_limits(self) -> None:
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
        if not (math.isfinite(self.resend_cap) and self.resend_cap > 0):
            raise ConfigError(f"re-send cap must be positive, got {self.resend_cap}")
        if self.window < 1:
            raise ConfigError(f"window must be at least 1, got {self.window}")
        if self.max_catchup < 1:
            raise ConfigError(f"max_catchup must be at least 1, got {self.max_catchup}")

    @property
    def samples_per_chunk(self) -> int:
        return round(self.chunk_seconds * self.sample_rate)

    @property
    def samples_per_strip(self) -> int:
        return round(self.strip_seconds * self.sample_rate)


@dataclass
class DeviceStats:
    """Counters for logs and tests (not persisted; the outbox is the record)."""

    generated: int = 0
    published_live: int = 0
    published_backlog: int = 0
    resent: int = 0
    resent_by_reason: collections.Counter[str] = field(default_factory=collections.Counter)
    gaps: int = 0  # readings found missing from an ingest confirmation (devices/resend.py)
    released: int = 0
    evicted: int = 0
    skipped_chunks: int = 0
    rejected_publishes: int = 0
    strips: int = 0
    skipped_strips: int = 0


class Device:
    """One simulated monitor. See the module docstring for the rules it follows."""

    def __init__(self, device_id: str, profile: PatientProfile, stream: EcgStream,
                 outbox: Outbox, publisher: Publisher, clock: Clock, config: DeviceConfig,
                 *, start_offset: float = 0.0, history: DeviceHistory | None = None,
                 rng: UniformSource | None = None, sign_key: bytes | None = None) -> None:
        self.device_id = device_id
        self._sign_key = sign_key  # signs every copy of its readings (wire.signing); None: unsigned
        self.profile = profile
        self.config = config
        self._stream = stream
        self._outbox = outbox
        self._publisher = publisher
        self._clock = clock
        self._topic = ecg_topic(device_id)
        self._qos = config.delivery.qos
        self._history: DeviceHistory = history if history is not None else NoHistory()
        booted_at = clock.now()
        # recording stops at config.record_until (simulated wall time), kept as monotonic time
        self._until_mono = (math.inf if config.record_until is None
                            else config.record_until - booted_at + clock.monotonic())
        self.boot_epoch, self.next_seq = outbox.register(device_id, profile, booted_at)
        self._history.boot(booted_at, device_id, self.boot_epoch, self.next_seq)
        # chunk k covers [start + k*cs, start + (k+1)*cs) of simulated time
        self._start_mono = clock.monotonic() + start_offset
        self._start_wall = booted_at + start_offset
        # the stream's sample numbers are absolute (time n / fs): chunk k starts at this + k*spc
        self._n_start = round(self._start_wall * config.sample_rate)
        self._k = 0
        self._schedule: StripSchedule | None = None
        if config.recording is Recording.STRIP:
            schedule = StripSchedule(profile.seed,
                                     profile.strips_per_day or config.strips_per_day,
                                     config.strip_seconds)
            self._schedule = schedule
            self._wall_minus_mono = booted_at - clock.monotonic()
            self._slot = schedule.first_at_or_after(booted_at)
            self._set_next_strip(schedule)
        self.connected = False
        self._cursor = -1  # every outbox row with seq <= cursor is in flight (or released)
        # what is in flight and what goes again (devices/resend.py); its timers are simulated
        # seconds, scaled like the ack timeout (a network round trip is real time)
        self._flights = InFlight(probe_base=config.ack_timeout * clock.speed,
                                 probe_cap=max(config.resend_cap, config.ack_timeout) * clock.speed,
                                 rng=rng if rng is not None else SplitMix(profile.seed))
        self._mids: dict[int, tuple[int, int]] = {}  # mid -> (seq, boot) (QoS 1, this connection)
        # end-to-end: how much may be in flight (devices/flow.py); its spread is real time, too
        self._cwnd = CongestionWindow(config.window, spread=RESUME_SPREAD * config.ack_timeout * clock.speed,
                                      rng=SplitMix(profile.seed + 1))
        self.ingest_online: bool | None = None  # end-to-end: the ingest service's last status
        # the last status of each ingest source (topic): (online, broker session name)
        self._ingest_sources: dict[str, tuple[bool, str]] = {}
        self._fresh: list[tuple[int, bytes]] = []  # generated this tick, not yet published
        # backlog pacing: a token bucket in simulated time, one second's worth deep
        self._pace = config.backlog_pace
        self._tokens = max(1.0, self._pace) if self._pace else math.inf
        self._tokens_at = clock.monotonic()
        self._held_back = False  # the last pump had more to send than the pace allowed
        self.stats = DeviceStats()

    # --- generation ---------------------------------------------------------------------

    @property
    def next_due(self) -> float:
        """Simulated monotonic time at which the next chunk (strip mode: strip) is complete."""
        if self._schedule is not None:
            return self._strip_due
        return self._start_mono + (self._k + 1) * self.config.chunk_seconds

    @property
    def next_strip_start(self) -> float | None:
        """Strip mode: simulated wall time at which the next strip starts (None otherwise)."""
        return self._strip_start if self._schedule is not None else None

    def _set_next_strip(self, schedule: StripSchedule) -> None:
        self._strip_start = schedule.start(*self._slot)
        self._strip_due = (self._strip_start + self.config.strip_seconds
                           - self._wall_minus_mono)

    def generate(self) -> int:
        """Turn every chunk (strip) of simulated time that has passed into outbox rows."""
        if self._schedule is not None:
            return self._generate_strips(self._schedule)
        now = min(self._clock.monotonic(), self._until_mono + 1e-9)
        cs = self.config.chunk_seconds
        if now < self.next_due:
            return 0
        complete = math.floor((now - self._start_mono) / cs + 1e-9)
        if complete - self._k > self.config.max_catchup:
            skip = complete - self._k - self.config.max_catchup
            self._k += skip
            self.stats.skipped_chunks += skip
        made = 0
        spc = self.config.samples_per_chunk
        while self._k < complete:
            self._make_reading(self._start_wall + self._k * cs, self._n_start + self._k * spc, spc)
            self._k += 1
            made += 1
        return made

    def _generate_strips(self, schedule: StripSchedule) -> int:
        now = min(self._clock.monotonic(), self._until_mono)
        if now < self._strip_due:
            return 0
        due: collections.deque[float] = collections.deque(maxlen=self.config.max_catchup)
        skipped = 0
        while self._strip_due <= now:
            if len(due) == due.maxlen:
                skipped += 1  # the oldest is pushed out: only the newest max_catchup are kept
            due.append(self._strip_start)
            self._slot = schedule.next_slot(*self._slot)
            self._set_next_strip(schedule)
        self.stats.skipped_strips += skipped
        return sum(self._record_strip(start) for start in due)

    def _record_strip(self, start: float) -> int:
        """One strip starting at `start` (simulated wall time): its chunks, consecutive seqs."""
        cfg = self.config
        n0 = round(start * cfg.sample_rate)
        strip_id = self.next_seq + 1  # unique per device for good: seqs never repeat
        first = 0
        for i, size in enumerate(np.array_split(np.arange(cfg.samples_per_strip), cfg.strip_chunks)):
            self._make_reading(start + first / cfg.sample_rate, n0 + first, size.size,
                               strip_id=strip_id, chunk=i, chunks=cfg.strip_chunks)
            first += size.size
        self.stats.strips += 1
        return cfg.strip_chunks

    def _make_reading(self, captured_at: float, n0: int, n: int, *, strip_id: int = 0,
                      chunk: int = 0, chunks: int = 1) -> None:
        """The reading of stream samples n0..n0+n-1 (absolute sample numbers)."""
        cfg = self.config
        ecg = self._stream.read(n0, n)
        reading = Reading(
            device_id=self.device_id, boot_epoch=self.boot_epoch, seq=self.next_seq,
            captured_at=captured_at, sample_rate_hz=cfg.sample_rate, gain_uv=cfg.gain_uv,
            samples=ecg.samples, strip_id=strip_id, chunk=chunk, chunks=chunks,
            flags=FLAG_LEAD_OFF if ecg.lead_off else 0,
        )
        payload = encode_reading(reading, key=self._sign_key)
        now = self._clock.now()
        for seg in ecg.truth:  # ground truth first seen in this reading (devices/history.py)
            self._history.truth(now, self.device_id, seg.kind, seg.label, seg.start, seg.end,
                                seg.episode, seg.hr_bpm)
        # recorded before the append; the fleet flushes the history before it commits
        self._history.generated(now, self.device_id, self.boot_epoch, reading.seq, captured_at)
        result = self._outbox.append(
            self.device_id, reading.seq, self.boot_epoch, captured_at, payload, now,
        )
        self.next_seq += 1
        self.stats.generated += 1
        eviction = result.eviction
        if eviction is not None:
            self._history.evicted(now, self.device_id, eviction.boot_epoch, eviction.seq,
                                  eviction.reason)
            self.stats.evicted += 1
            self._flights.pop(eviction.seq)
            self._fresh = [f for f in self._fresh if f[0] != eviction.seq]
        if result.stored:
            self._fresh.append((reading.seq, payload))

    # --- publishing ---------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Readings sent and not yet released (PUBACK or ack)."""
        return len(self._flights)

    @property
    def unsent(self) -> int:
        """Outbox rows never sent in this boot."""
        return self._outbox.count(self.device_id) - len(self._flights)

    @property
    def resume_at(self) -> float:
        """Simulated monotonic time before which an end-to-end device sends nothing after ingest
        came back online (devices/flow.py: the fleet's answers are spread); -inf if none."""
        return self._cwnd.resume_at

    @property
    def paused(self) -> bool:
        """End-to-end holds everything in the outbox while the ingest service is known offline."""
        return self.config.delivery is Delivery.END_TO_END and self.ingest_online is False

    def pump(self) -> int:
        """Publish what the window allows: due re-sends first, then unsent rows oldest-first.
        With a backlog pace, re-sends and backlog rows together take at most `backlog_pace`
        per simulated second (a token bucket one second deep); live readings are not paced."""
        fresh, self._fresh = self._fresh, []
        now = self._clock.monotonic()
        self._refill(now)
        self._held_back = False
        if not self.connected or self.paused or now < self._cwnd.resume_at:
            return 0
        if self.config.delivery is Delivery.END_TO_END:
            self._flights.probe(now)
        sent = self._resend_due(now)
        room = self._window() - len(self._flights)
        unsent = self.unsent
        if room <= 0 or unsent <= 0:
            return sent
        if fresh and unsent == len(fresh):
            # nothing older is waiting: these go out live, from memory
            return sent + self._send(fresh[:room], live=True, now=now)
        budget = min(room, int(self._tokens)) if self._pace else room
        self._held_back = self._held_back or budget < min(room, unsent)
        if budget < self._batch(unsent):
            return sent  # refill the backlog in batches, not one query per freed slot
        rows = self._outbox.pending(self.device_id, limit=budget, after_seq=self._cursor)
        return sent + self._send(rows, live=False, now=now)

    def _window(self) -> int:
        """Readings that may be in flight: end-to-end follows its congestion window."""
        if self.config.delivery is Delivery.END_TO_END:
            return min(self.config.window, self._cwnd.allowed)
        return self.config.window

    def _batch(self, unsent: int) -> int:
        """Backlog rows worth one outbox query: a quarter window (paced: at most a bucketful)."""
        batch = min(unsent, max(1, self._window() // 4))
        if self._pace:
            batch = min(batch, max(1, int(self._pace)))
        return batch

    def _refill(self, now: float) -> None:
        """A token bucket one second deep, except that while the device is held back by the
        pace (it had more to send at the last pump), everything accrued since then is added
        on top of what is left: the pace must hold however far apart the pumps are (under
        time compression the fleet's 0.1-s real tick is several simulated seconds)."""
        if self._pace:
            depth = max(1.0, self._pace)
            accrued = (now - self._tokens_at) * self._pace
            self._tokens = (min(depth, self._tokens) + accrued if self._held_back
                            else min(depth, self._tokens + accrued))
        self._tokens_at = now

    def _resend_due(self, now: float) -> int:
        limit = len(self._flights)
        if self._pace:
            limit = min(limit, int(self._tokens))
        due = self._flights.due(now, limit)
        if self._pace and self._flights.next_due <= now:
            self._held_back = True
        if not due:
            return 0
        payloads = self._outbox.payloads(self.device_id, [seq for seq, _ in due])
        for seq, _ in due:
            if seq not in payloads:
                self._flights.pop(seq)  # evicted or released meanwhile
        n = 0
        for seq, reason in due:
            if seq in payloads:
                if self._send([(seq, payloads[seq])], live=False, now=now, reason=reason) == 0:
                    break
                n += 1
                self.stats.resent_by_reason[reason] += 1
        self.stats.resent += n
        return n

    def _send(self, rows: list[tuple[int, bytes]], *, live: bool, now: float,
              reason: str | None = None) -> int:
        accepted: list[int] = []
        at = self._clock.now()
        for seq, payload in rows:
            if live:
                wire, boot = payload, self.boot_epoch  # generated this tick, by this boot
            else:
                reading = decode_reading(payload)
                wire = encode_reading(reading, flags=reading.flags | FLAG_BACKLOG, key=self._sign_key)
                boot = reading.boot_epoch
            mid = self._publisher.publish(self._topic, wire, self._qos)
            if mid is None:
                self.stats.rejected_publishes += 1
                break
            self._history.published(at, self.device_id, boot, seq, self._qos, not live, reason)
            accepted.append(seq)
            self._cursor = max(self._cursor, seq)
            if self.config.delivery is Delivery.FIRE_AND_FORGET:
                continue
            self._mids[mid] = (seq, boot)
            self._flights.sent(seq, now)
        if live:
            self.stats.published_live += len(accepted)
        else:
            self.stats.published_backlog += len(accepted)
            if self._pace:
                self._tokens -= len(accepted)
        if self.config.delivery is Delivery.FIRE_AND_FORGET:
            self.stats.released += self._outbox.delete(self.device_id, accepted)
        else:
            self._outbox.mark_sent(self.device_id, accepted, at)
        return len(accepted)

    def wake_at(self) -> float:
        """Simulated monotonic time at which this device next needs the fleet's tick:
        its next chunk/strip, its earliest re-send or probe, or at once (-inf) if it is
        connected with unsent rows and room in its window."""
        t = self.next_due if self.next_due <= self._until_mono else math.inf
        if self.connected and not self.paused and self._cwnd.resume_at > self._clock.monotonic():
            return min(t, self._cwnd.resume_at)
        if self.connected and not self.paused:
            if self.unsent > 0 and len(self._flights) < self._window():
                if not self._pace:
                    return -math.inf
                need = self._batch(self.unsent)
                if self._tokens >= need:
                    return -math.inf
                t = min(t, self._tokens_at + (need - self._tokens) / self._pace)  # paced
            t = min(t, self._flights.next_due)
            if self.config.delivery is Delivery.END_TO_END and len(self._flights):
                t = min(t, self._flights.probe_at)
        return t

    # --- link events --------------------------------------------------------------------

    def on_connected(self, session_present: bool = False) -> None:
        """A new connection. End-to-end keeps a broker session: if the broker did not have it
        any more, it lost what it held, and everything in flight is sent again."""
        self.connected = True
        now = self._clock.monotonic()
        if self.config.delivery is Delivery.END_TO_END:
            if not session_present:
                self._flights.session_lost(now)
            self._flights.restart_probe(now)
            self._cwnd.restart(now, herd=False)

    def on_disconnected(self) -> None:
        """Message ids die with the connection; copies the broker never PUBACKed go again."""
        self.connected = False
        self._mids.clear()
        self._flights.connection_lost(self._clock.monotonic())

    def on_puback(self, mid: int, ok: bool = True) -> None:
        """The broker acknowledged a QoS 1 publish (ok=False: with a failure reason code)."""
        entry = self._mids.pop(mid, None)
        if entry is None:
            return
        seq, boot = entry
        if ok:
            self._history.broker_acked(self._clock.now(), self.device_id, boot, seq)
        if seq not in self._flights:
            return
        self._flights.broker_acked(seq, ok, self._clock.monotonic())
        if ok and self.config.delivery is Delivery.BROKER_ACK:
            self._flights.pop(seq)
            self.stats.released += self._outbox.delete(self.device_id, [seq])

    def on_ack(self, ranges: list[tuple[int, int]]) -> int:
        """The ingest service confirmed these seq ranges as stored. Returns rows released.
        Readings whose latest copy went out before the first copy of a confirmed one are due
        again (devices/resend.py, "gap")."""
        if self.config.delivery is not Delivery.END_TO_END or not ranges:
            return 0
        confirmed = [s for s in self._flights.flights if any(a <= s <= b for a, b in ranges)]
        gaps = self._flights.confirmed(confirmed, self._clock.monotonic())
        self._cwnd.confirmed(len(confirmed))
        if gaps:
            self._cwnd.gap()
        self.stats.gaps += gaps
        released = self._outbox.release_ranges(self.device_id, ranges)
        if released:
            at = self._clock.now()
            for seq, boot in released:
                self._history.ingest_acked(at, self.device_id, boot, seq)
        self.stats.released += len(released)
        return len(released)

    def on_ingest_status(self, online: bool, session: str, source: str = "") -> None:
        """The ingest service's retained status (ingest/announce.py), from `source` (its topic:
        the one service's, or one of several workers'). Ingest is online while any of them is.
        Offline: hold everything in the outbox. Online under a broker session this device did
        not know for that source: what the broker held for it before is gone, so everything in
        flight goes again."""
        if self.config.delivery is not Delivery.END_TO_END:
            return
        now = self._clock.monotonic()
        was_online = self.ingest_online
        known = self._ingest_sources.get(source)
        self._ingest_sources[source] = (online, session)
        self.ingest_online = any(up for up, _ in self._ingest_sources.values())
        if not online:
            return
        if known is not None and session != known[1]:
            self._flights.ingest_session_changed(now)
        if not was_online:
            self._flights.restart_probe(now)
            # back from offline (with everyone else): start small, at a random moment within
            # the ack timeout; at first sight of the status, nothing changes
            if was_online is False:
                self._cwnd.restart(now, herd=True)
