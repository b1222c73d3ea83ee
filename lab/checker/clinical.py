"""The clinical section: what an outage cost the patients, not the messages. Pure.

    clinical(history, outcomes) -> Clinical

From the ground truth (history.truth), the analysis stage's events (history.clinical_events) and
the fate of every reading (classify.py), each episode a patient had is given one outcome:

    live        an event of its kind was raised within LIVE_SLACK_S + one reading's length of
                the moment it could first be known (its *observable onset*: the episode's start,
                or the capture of the first reading holding it if the device was not recording)
    late        raised later than that; delay = raised_at − observable onset, where the time
                the machine spent after the reading could be delivered (its capture had ended
                and so had every fault that held it back) counts as the real seconds it took:
                × machine_scale, 1 / the run's speed (a compressed run's ingest and analysis
                take real seconds, which its clock shows `speed` times longer)
    lost        never raised, and some of its readings were evicted or lost (the cause: the most
                common among those readings: broker-queue-overflow, qos0-link-down, evicted, ...)
    buffered    never raised, and some of its readings never arrived (still in an outbox)
    unanalysed  never raised, every reading holding it was stored, and some of them the
                analysis stage had not analysed yet (history.unanalysed): the machine was
                behind, which says nothing of the detector (a scenario run is then not faithful)
    missed      never raised although every reading holding it was stored and analysed: a
                detector miss
    unrecorded  no generated reading overlaps it (a strip-mode device records a few strips a
                day); not counted in `episodes`, as nothing could have seen it

So episodes = live + late + lost + buffered + unanalysed + missed. Delivery takes the blame whenever it
withheld any of an episode's readings.

What counts as an episode (EPISODE_KINDS, the analysis' event rules): a rhythm segment whose
label is AF ("af", "af-episode"), a pause ("pause", longer than PAUSE_S), brady ("brady":
below BRADY_BPM) or tachy ("tachy", "vt": above TACHY_BPM), or any other rhythm (sinus, pvc,
...) whose rate is below BRADY_BPM or above TACHY_BPM; scheduled episodes and baseline rhythms
alike (a baseline lasts until the run ends). The rate is the segment's hr_bpm, else (a
baseline) the patient's profile's. A brady or tachy segment whose rate misses the rule is no
episode, but the events it raises are no false alarms either; one of unknown rate counts when
it is a scheduled episode.

An event matches a segment of its kind on its device when [onset, end] overlaps the segment
widened by MATCH_SLACK_S (or one reading, if longer) on both sides: a sliding window may date a
change a little early. Events matching no segment are *false alarms*; "unreadable" events are
counted apart (they answer artifacts, not rhythms). A brady or tachy event within an AF
segment is explained by it (an irregular RR's 5-beat median crosses the thresholds now and
then): not a false alarm, and no episode of its own.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lab.checker.measures import quantiles
from lab.checker.result import Quantiles, ReadingOutcome
from lab.history import Generated, History, Key
from lab.history.truth import RHYTHM, ClinicalEvent, Patient, TruthSegment

EPISODE_KINDS = ("af", "brady", "tachy", "pause")
OUTCOMES = ("live", "late", "lost", "buffered", "unanalysed", "missed")
UNRECORDED = "unrecorded"
BRADY_BPM, TACHY_BPM, PAUSE_S = 40.0, 150.0, 3.0
LIVE_SLACK_S = 60.0  # simulated seconds the analysis may take after a reading could be known
MATCH_SLACK_S = 30.0
# AF's irregular RR takes a 5-RR median past the rate rules' thresholds now and then (rapid
# ventricular response): such rate events are explained by the AF, neither episodes nor false alarms
_IRREGULAR = {"af": ("brady", "tachy")}
_LABELS = {"af": "af", "afib": "af", "brady": "brady", "tachy": "tachy", "vt": "tachy",
           "svt": "tachy", "pause": "pause"}


@dataclass(frozen=True)
class Episode:
    """One episode a patient had, and what the system made of it."""

    dev: str
    kind: str  # af | brady | tachy | pause
    label: str
    start: float
    end: float
    baseline: bool
    outcome: str  # live | late | lost | buffered | missed | unrecorded
    onset: float | None = None  # observable onset (None: unrecorded)
    raised_at: float | None = None
    delay_s: float | None = None  # real-time equivalent (_Timing)
    delay_raw_s: float | None = None  # raised_at − onset as the run's clock saw it
    wait_s: float | None = None  # seen: raised − when it could first arrive (real-time equivalent)
    cause: str | None = None  # lost: why its readings are gone
    readings: int = 0  # generated readings holding it

    @property
    def seen(self) -> bool:
        return self.outcome in ("live", "late")

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Clinical:
    episodes: tuple[Episode, ...] = ()
    false_alarms: tuple[ClinicalEvent, ...] = ()
    events: int = 0  # rhythm events raised (brady, tachy, pause, af)
    events_by_kind: Mapping[str, int] = field(default_factory=dict)
    unreadable: int = 0  # "unreadable" events raised
    delay: Quantiles = field(default_factory=Quantiles)  # raised − observable onset, seen ones
    wait: Quantiles = field(default_factory=Quantiles)  # raised − when it could arrive, late ones
    machine_scale: float = 1.0  # the machine's time after the last fault counted × this (_Timing)

    def recorded(self, kind: str | None = None) -> list[Episode]:
        return [e for e in self.episodes if e.outcome != UNRECORDED and kind in (None, e.kind)]

    def counts(self, kind: str | None = None) -> dict[str, int]:
        eps = [e for e in self.episodes if kind in (None, e.kind)]
        by = Counter(e.outcome for e in eps)
        out = {"episodes": len(eps) - by[UNRECORDED]}
        out.update({o: by[o] for o in (*OUTCOMES, UNRECORDED)})
        out["seen"] = by["live"] + by["late"]
        out["false_alarms"] = sum(1 for a in self.false_alarms if kind in (None, a.kind))
        return out

    def lost_by_cause(self) -> dict[str, int]:
        return dict(sorted(Counter(e.cause or "unknown" for e in self.episodes
                                   if e.outcome == "lost").items()))

    def kinds(self) -> list[str]:
        seen = {e.kind for e in self.episodes} | {a.kind for a in self.false_alarms}
        return [k for k in EPISODE_KINDS if k in seen]

    def metrics(self) -> dict[str, float | None]:
        """The expectation language's clinical measures (lab/checker/expect.py)."""
        m: dict[str, float | None] = {}
        for kind in (None, *EPISODE_KINDS):
            c, suffix = self.counts(kind), "" if kind is None else f".{kind}"
            m[f"episodes{suffix}"] = float(c["episodes"])
            for o in (*OUTCOMES, "seen", UNRECORDED):
                m[f"episodes_{o}{suffix}"] = float(c[o])
            m[f"false_alarms{suffix}"] = float(c["false_alarms"])
        for q in ("p50", "p99", "max"):
            m[f"episode_delay.{q}"] = getattr(self.delay, q)
        return m

    def as_dict(self, max_listed: int = 200) -> dict[str, Any]:
        return {
            "live_slack_s": LIVE_SLACK_S, "machine_scale": self.machine_scale,
            "totals": self.counts(),
            "by_kind": {k: self.counts(k) for k in self.kinds()},
            "lost_by_cause": self.lost_by_cause(),
            "delay_s": self.delay.as_dict(),
            "wait_s": self.wait.as_dict(),
            "events": self.events, "unreadable_events": self.unreadable,
            "episodes": [e.as_dict() for e in self.episodes[:max_listed]],
            "episodes_left_off": max(0, len(self.episodes) - max_listed),
            "false_alarms": [{"dev": a.dev, "kind": a.kind, "onset": a.onset, "raised_at": a.raised_at}
                             for a in self.false_alarms[:max_listed]],
        }


def _rate(seg: TruthSegment, patient: Patient | None) -> float | None:
    """The segment's rate, else (a baseline) its patient's."""
    if seg.hr_bpm is not None or seg.episode or patient is None:
        return seg.hr_bpm
    return patient.hr_bpm


def episode_kind(seg: TruthSegment, patient: Patient | None = None) -> str | None:
    """The event kind a rhythm segment would raise, by its label, else (sinus, pvc, ...) by
    its rate; None: no event rule applies."""
    if seg.kind != RHYTHM:
        return None
    base = seg.label.lower().removesuffix("-episode").removesuffix("-run")
    if base in _LABELS:
        return _LABELS[base]
    hr = _rate(seg, patient)
    if hr is None:
        return None
    return "brady" if hr < BRADY_BPM else "tachy" if hr > TACHY_BPM else None


def qualifies(seg: TruthSegment, kind: str, patient: Patient | None, run_end: float) -> bool:
    """Whether the event rule of `kind` applies to the segment (module docstring)."""
    if kind == "af":
        return True
    if kind == "pause":
        return seg.until(run_end) - seg.start > PAUSE_S
    hr = _rate(seg, patient)
    if hr is None:
        return seg.episode
    return hr < BRADY_BPM if kind == "brady" else hr > TACHY_BPM


class _Readings:
    """One device's generated readings as capture spans, with their outcome."""

    def __init__(self, spans: list[tuple[float, float, ReadingOutcome]]) -> None:
        spans.sort(key=lambda s: s[0])
        self.spans = spans
        self.starts = [s[0] for s in spans]

    def holding(self, start: float, end: float) -> list[tuple[float, float, ReadingOutcome]]:
        """The readings whose capture overlaps [start, end]."""
        i = bisect.bisect_right(self.starts, end)
        out = []
        for s in reversed(self.spans[:i]):
            if s[1] > start:
                out.append(s)
            elif s[1] <= start - 86400:  # readings are far shorter than a day
                break
        return out[::-1]


def reading_lengths(history: History) -> tuple[dict[str, float], float]:
    """Each device's reading length (its profile's, else its stored readings'), and a default."""
    stored: dict[str, float] = {}
    for s in history.stored:
        if s.duration_s > 0:
            stored[s.dev] = max(stored.get(s.dev, 0.0), s.duration_s)
    lengths = dict(stored)
    for dev, p in history.patients.items():
        if p.reading_s:
            lengths[dev] = p.reading_s
    common = Counter(stored.values()).most_common(1)
    return lengths, common[0][0] if common else 1.0


def _readings(history: History, outcomes: Mapping[Key, ReadingOutcome],
              lengths: Mapping[str, float], default: float) -> dict[str, _Readings]:
    spans: dict[str, list[tuple[float, float, ReadingOutcome]]] = defaultdict(list)
    for e in history.events(Generated):
        o = outcomes.get(e.key)
        if o is not None and e.cap is not None:
            spans[e.dev].append((e.cap, e.cap + lengths.get(e.dev, default), o))
    return {d: _Readings(s) for d, s in spans.items()}


def _fate(held: Sequence[tuple[float, float, ReadingOutcome]],
          unanalysed: frozenset[Key] = frozenset()) -> tuple[str, str | None]:
    """An undetected episode's outcome from its readings' (module docstring)."""
    withheld = [o for _, _, o in held if o.outcome != "stored"]
    if not withheld:
        return ("unanalysed" if any(o.key in unanalysed for _, _, o in held) else "missed"), None
    if any(o.outcome == "buffered" for o in withheld):
        return "buffered", None
    causes = Counter(o.cause if o.outcome == "lost" else "evicted" for o in withheld)
    return "lost", str(causes.most_common(1)[0][0])


@dataclass
class _Candidate:
    seg: TruthSegment
    kind: str
    end: float
    counts: bool  # an episode (else only guards its events from being false alarms)
    events: list[ClinicalEvent] = field(default_factory=list)


def _candidates(history: History, run_end: float) -> dict[tuple[str, str], list[_Candidate]]:
    out: dict[tuple[str, str], list[_Candidate]] = defaultdict(list)
    for seg in history.truth:
        patient = history.patients.get(seg.dev)
        kind = episode_kind(seg, patient)
        if kind is None:
            continue
        end = max(seg.start, seg.until(run_end))
        out[(seg.dev, kind)].append(_Candidate(seg, kind, end, qualifies(seg, kind, patient, run_end)))
        for rate in _IRREGULAR.get(kind, ()):  # rate events an irregular rhythm explains
            out[(seg.dev, rate)].append(_Candidate(seg, rate, end, counts=False))
    return out


def _match(cands: dict[tuple[str, str], list[_Candidate]], events: Iterable[ClinicalEvent],
           lengths: Mapping[str, float], default: float) -> list[ClinicalEvent]:
    """Attach each rhythm event to every segment it matches; the events matching none."""
    false = []
    for ev in events:
        slack = max(MATCH_SLACK_S, lengths.get(ev.dev, default))
        ev_end = ev.onset if ev.end is None else max(ev.onset, ev.end)
        hits = [c for c in cands.get((ev.dev, ev.kind), ())
                if ev.onset <= c.end + slack and ev_end >= c.seg.start - slack]
        for c in hits:
            c.events.append(ev)
        if not hits:
            false.append(ev)
    return false


class _Timing:
    """Real-time-equivalent raise times. After a reading could be delivered (its capture ended
    and every fault that might hold it back had ended), what remains is the machine's time:
    ingest, the network's timers, the analysis. A compressed run spends real seconds on it,
    which its clock shows `speed` times longer; `scale` (1 / speed) counts them back as the
    real seconds they took."""

    def __init__(self, history: History, scale: float) -> None:
        self.scale = scale
        self.fault_ends = sorted(w.end for w in history.faults if w.end is not None)

    def arrivable(self, raised_at: float, ready: float) -> float:
        """When a reading ready at `ready` could first arrive: then, or at the end of the last
        fault that ended between then and `raised_at` (it may have held it back)."""
        i = bisect.bisect_right(self.fault_ends, raised_at)
        return max([ready, *(e for e in self.fault_ends[:i] if e > ready)])

    def raised(self, raised_at: float, ready: float) -> float:
        start = self.arrivable(raised_at, ready)
        return raised_at if raised_at <= start else start + (raised_at - start) * self.scale


def _episode(c: _Candidate, readings: _Readings | None, live_bound: float, timing: _Timing,
             unanalysed: frozenset[Key] = frozenset()) -> Episode:
    held = readings.holding(c.seg.start, c.end) if readings else []
    first = min((ev for ev in c.events), key=lambda ev: ev.raised_at, default=None)
    ep = Episode(c.seg.dev, c.kind, c.seg.label, c.seg.start, c.end, not c.seg.episode, UNRECORDED,
                 readings=len(held))
    onset = max(c.seg.start, held[0][0]) if held else None
    if first is not None:
        at = onset if onset is not None else c.seg.start
        holding = readings.holding(first.onset, first.onset) if readings else []
        ready = holding[0][1] if holding else first.onset
        raised = timing.raised(first.raised_at, ready)
        delay = max(0.0, raised - at)
        wait = max(0.0, raised - max(at, timing.arrivable(first.raised_at, ready)))
        return replace(ep, outcome="live" if delay <= live_bound else "late", onset=at,
                       raised_at=first.raised_at, delay_s=round(delay, 6),
                       delay_raw_s=round(max(0.0, first.raised_at - at), 6), wait_s=round(wait, 6))
    if not held:
        return ep
    outcome, cause = _fate(held, unanalysed)
    return replace(ep, outcome=outcome, onset=onset, cause=cause)


def clinical(history: History, outcomes: Mapping[Key, ReadingOutcome],
             run_end: float | None = None, machine_scale: float = 1.0) -> Clinical:
    """The clinical section of a history (module docstring); run_end closes baseline segments
    (default: the history's end); machine_scale: 1 / the run's speed (_Timing)."""
    end = run_end if run_end is not None else (history.ended_at or 0.0)
    lengths, default = reading_lengths(history)
    cands = _candidates(history, end)
    rhythm_events = [e for e in history.clinical_events if e.kind in EPISODE_KINDS]
    false = _match(cands, rhythm_events, lengths, default)
    readings = _readings(history, outcomes, lengths, default) if cands else {}
    timing = _Timing(history, machine_scale)
    episodes = [_episode(c, readings.get(c.seg.dev), LIVE_SLACK_S + lengths.get(c.seg.dev, default),
                         timing, history.unanalysed) for group in cands.values() for c in group if c.counts]
    episodes.sort(key=lambda e: (e.start, e.dev, e.kind))
    delays = [e.delay_s for e in episodes if e.delay_s is not None]
    waits = [e.wait_s for e in episodes if e.wait_s is not None and e.outcome == "late"]
    return Clinical(
        episodes=tuple(episodes),
        false_alarms=tuple(sorted(false, key=lambda a: (a.onset, a.dev))),
        events=len(rhythm_events),
        events_by_kind=dict(Counter(e.kind for e in rhythm_events)),
        unreadable=sum(1 for e in history.clinical_events if e.kind == "unreadable"),
        delay=quantiles(delays),
        wait=quantiles(waits),
        machine_scale=machine_scale,
    )
