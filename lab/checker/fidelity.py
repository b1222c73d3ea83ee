"""Fidelity: did the stack keep up with the timeline it was asked to play? Pure.

A compressed run asks the machine for `speed` times the real load. When the stack cannot
follow, readings pile up in the outboxes and at the broker for reasons the scenario never
named, and a verdict such as "lost = 0" is then about a different story. So every run is
judged on two rules, in simulated seconds:

    steady lag   Outside disturbed periods, every reading is stored within `max_lag_s` of the
                 end of its capture (`lag` = stored_at − capture end; a reading never stored
                 lags until the history ends). A disturbed period is a fault window from its
                 start until the device outboxes are back at their level before it (the
                 window's drain), so what a fault delays is the fault's doing, not the
                 stack's. Readings lost for a cause are judged by the checker's other rules.
    drain        After each window, the outboxes are back at their level before it within the
                 window's allowance: the drain the story itself implies (DRAIN_SHARE × the
                 window's length, or longer where the devices pace their backlog: the
                 runner's `story_drain_s`) plus `max_lag_s` for the machine. A drain that
                 never ends fails. (The network does not compress: a drain may run past the
                 timeline's end, into the runner's drain phase, if it is quick enough.)

`faithful` is None when no bound was given (the checker alone cannot know the speed the run
ran at; the scenario runner passes it). The worst lag and its moment, with the outbox and
broker levels then, say where the stack fell behind. `suggest_speed` turns a failure into
advice: a drain or a lag in simulated seconds is roughly the stack's real backlog time times
the speed, so a speed scaled by (allowed / measured), with a margin, would have kept up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from lab.checker.index import ReadingIndex
from lab.checker.measures import Drain, Series
from lab.checker.result import Fidelity
from lab.history import FaultWindow

DRAIN_SHARE = 0.25  # a window's backlog may take up to a quarter of the window's length to drain
MARGIN = 0.7  # suggested speeds aim this far under what the run suggests would just fit


def _disturbed(windows: Sequence[FaultWindow], drains: Sequence[Drain], end: float,
               lead_s: float) -> list[tuple[float, float]]:
    """Each window from `lead_s` before its start (a reading still on its way when the fault
    began is the fault's too) until its drain ended."""
    spans = []
    for w, d in zip(windows, drains, strict=True):
        if w.end is None or d.outbox_drain_s is None:
            spans.append((w.start - lead_s, math.inf))
        else:
            spans.append((w.start - lead_s, w.end + d.outbox_drain_s))
    return sorted(spans) if spans else [(end + 1.0, end + 1.0)]


def _settled(windows: Sequence[FaultWindow], drains: Sequence[Drain], outbox: Series,
             slack: float, restored: Mapping[str, float | None]) -> list[Drain]:
    """The windows' outbox drains, counted from when ingest received again after the window
    (a process restart or a reconnect is not the backlog's drain) and ending when the level is
    back within `slack` of where it was (one reading a device: with live readings in flight,
    the fleet's outboxes are rarely all empty at the same instant). The result is measured
    from the window's end, like every drain."""
    out = []
    for w, d in zip(windows, drains, strict=True):
        took = None
        if w.end is not None:
            since = max(w.end, restored.get(w.id) or w.end)
            rest = outbox.drain(since, d.outbox_before + slack)
            took = None if rest is None else since - w.end + rest
        out.append(d._replace(outbox_drain_s=took))
    return out


def _cluster_ends(windows: Sequence[FaultWindow]) -> dict[str, float]:
    """Per window, the end of the group of overlapping windows it belongs to (transitively):
    a window inside another (a broker restart during an ingest freeze) drains only once the
    outer one has ended."""
    ends: dict[str, float] = {}
    group: list[FaultWindow] = []
    reach = -math.inf
    for w in sorted(windows, key=lambda w: w.start):
        w_end = math.inf if w.end is None else w.end
        if group and w.start > reach:
            ends.update({g.id: reach for g in group})
            group, reach = [], -math.inf
        group.append(w)
        reach = max(reach, w_end)
    ends.update({g.id: reach for g in group})
    return ends


def _lags(ix: ReadingIndex, spans: list[tuple[float, float]],
          end: float) -> list[tuple[float, float]]:
    """(lag, capture end) of every committed reading captured outside the disturbed spans."""
    durations = {s.key[0]: s.duration_s for s in ix.stored.values()}
    out = []
    for key, gen in ix.gens.items():
        if not ix.committed[key] or gen.cap is None:
            continue
        stored = ix.stored.get(key)
        cap_end = gen.cap + (stored.duration_s if stored is not None else durations.get(key[0], 0.0))
        if any(a <= cap_end <= b for a, b in spans):
            continue
        if stored is None and key in ix.release:
            continue  # let go without storage (a loss, or fire-and-forget): the checker's business
        out.append(((stored.t if stored is not None else end) - cap_end, cap_end))
    return out


def _drain_failures(windows: Sequence[FaultWindow], drains: Sequence[Drain], max_lag_s: float,
                    story_drain_s: Callable[[float], float],
                    restored: Mapping[str, float | None]) -> list[tuple[FaultWindow, float | None, float]]:
    """(window, drain seconds or None for never, allowance) of every window that drained late."""
    late = []
    cluster_end = _cluster_ends(windows)
    for w, d in zip(windows, drains, strict=True):
        if w.end is None:
            continue
        length = cluster_end[w.id] - w.start
        allowed = max(DRAIN_SHARE * length, story_drain_s(length)) + max_lag_s
        restored_at = restored.get(w.id) or w.end
        took = (None if d.outbox_drain_s is None
                else w.end + d.outbox_drain_s - max(cluster_end[w.id], restored_at))
        if took is None or took > allowed:
            late.append((w, took, allowed))
    return late


def no_story_drain(_window_s: float) -> float:
    """The story implies no drain time of its own (no backlog pacing)."""
    return 0.0


def fidelity(ix: ReadingIndex, windows: Sequence[FaultWindow], drains: Sequence[Drain],
             outbox: Series, broker: Series | None, *, end: float, max_lag_s: float | None,
             story_drain_s: Callable[[float], float] = no_story_drain,
             restored: Mapping[str, float | None] | None = None) -> Fidelity:
    """The worst steady lag (and when, and the levels then) and, with a bound, the verdict.
    `restored`: per window id, when ingest received again after it (FaultWindows.restored)."""
    restored = restored or {}
    drains = _settled(windows, drains, outbox, float(len(ix.devices)), restored)
    lags = _lags(ix, _disturbed(windows, drains, end, max_lag_s or 0.0), end)
    worst, at = max(lags, default=(0.0, None))
    worst_at = None if at is None else at + worst
    levels_at = worst_at if worst_at is not None else end
    fid = Fidelity(
        max_lag_s=max_lag_s, lag_s=round(worst, 3), lag_at=worst_at, judged=len(lags),
        outbox_at_lag=outbox.at(levels_at), broker_at_lag=None if broker is None else broker.at(levels_at),
    )
    if max_lag_s is None:
        return fid
    late = _drain_failures(windows, drains, max_lag_s, story_drain_s, restored)
    reasons = []
    if worst > max_lag_s and worst_at is not None:
        captured = worst_at - worst - ix_start(ix)
        reasons.append(f"the stack fell {_span(worst)} behind: a reading captured at "
                       f"t = {_span(captured)} was stored {_span(worst)} later (then: outboxes "
                       f"{fid.outbox_at_lag:g}, broker "
                       f"{'?' if fid.broker_at_lag is None else f'{fid.broker_at_lag:g}'}); "
                       f"allowed {_span(max_lag_s)}")
    for w, took, allowed in late:
        took_text = "never drained" if took is None else f"took {_span(took)} to drain"
        reasons.append(f"the backlog of window {w.id} {took_text} (allowed {_span(allowed)})")
    ratio = min([max_lag_s / worst] if worst > max_lag_s else []
                + [allowed / took if took else 0.1 for _, took, allowed in late], default=1.0)
    return Fidelity(**{**fid.__dict__, "faithful": not reasons, "reasons": tuple(reasons),
                       "speed_factor": None if not reasons else round(MARGIN * ratio, 4)})


def with_forgeries(fid: Fidelity, forged: int, left_at_end: float) -> Fidelity:
    """Readings whose keys a forgery took are refused by ingest as conflicts for ever, so their
    devices keep them: a backlog that "never drained" for that reason is the attack's doing,
    not the machine's slowness. When every reason is a window's backlog and what the outboxes
    still held at the end is no more than the forged keys, the run did play its timeline."""
    if fid.faithful is not False or forged <= 0 or left_at_end > forged:
        return fid
    if not all(r.startswith("the backlog of window") for r in fid.reasons):
        return fid
    return replace(fid, faithful=True, reasons=(), speed_factor=None)


def with_analysis(fid: Fidelity, unanalysed: int, stored: int, episodes: int) -> Fidelity:
    """A judged run whose analysis stage had not analysed every stored reading by its end did
    not play its clinical timeline either: its clinical verdicts would blame the detector for
    the machine's slowness. Not faithful, with a speed the analysis would have kept up with
    (in proportion to what it did analyse, with the margin)."""
    if fid.faithful is None or unanalysed <= 0 or stored <= 0:
        return fid
    share = max(0.0, (stored - unanalysed) / stored)
    reason = (f"the analysis stage was behind: {unanalysed} of {stored} stored readings not "
              f"analysed when the run ended ({episodes} episodes could not be judged)")
    return _fell_behind(fid, reason, max(share, 0.01))


def with_generation(fid: Fidelity, skipped: int, generated: int, first_at: float | None,
                    start: float) -> Fidelity:
    """A judged run whose fleet skipped chunks it could not generate in time (generation.py)
    recorded less than its story: not faithful, with a speed in proportion to what it made."""
    if fid.faithful is None or skipped <= 0:
        return fid
    when = "" if first_at is None else f" (the first after t = {_span(first_at - start)})"
    reason = (f"the fleet fell behind generating: {skipped} chunks never generated{when}; the"
              f" devices made {generated} of {generated + skipped} readings")
    return _fell_behind(fid, reason, generated / (generated + skipped))


def _fell_behind(fid: Fidelity, reason: str, share: float) -> Fidelity:
    """`fid` made not faithful for one more reason; the suggested speed is the run's times
    the share of the work that got done (with the margin), or what it already was if lower."""
    factor = round(MARGIN * share, 4)
    return Fidelity(**{**fid.__dict__, "faithful": False, "reasons": (*fid.reasons, reason),
                       "speed_factor": min(factor, fid.speed_factor or factor)})


def ix_start(ix: ReadingIndex) -> float:
    """The first time in the history's device events (0 when there are none)."""
    return ix.events[0].t if ix.events else 0.0


def _span(seconds: float) -> str:
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.1f} s"


def suggest_speed(speed: float, fid: Fidelity) -> float | None:
    """A speed that would probably have kept up (None when the run was faithful)."""
    if fid.speed_factor is None:
        return None
    s = speed * fid.speed_factor
    if s >= 10:
        digits = 10 ** (len(str(int(s))) - 2)
        s = math.floor(s / digits) * digits
    return max(1.0, round(s, 1))
