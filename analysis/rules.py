"""The clinical rules: pure functions from detected beats to episodes. No neurokit2, no I/O.

    episodes(device_id, runs) -> list[Episode]          rhythm and rate, per readable run
    unreadable_episodes(device_id, segments) -> list    unreadable stretches

A Run is a stretch of contiguous, readable signal of one device (readings chunk-seconds apart;
one strip is never joined to another) and the beats detected in it. `start_edge`/`end_edge`
say whether the run really starts/ends there (a data gap, an unreadable reading, a strip's
edge), or was only cut there by the evaluation window.

Thresholds (beats per minute from RR intervals, RR in seconds):

- brady: HR < 40 bpm, where HR = 60 / the interquartile mean of 9 consecutive RR intervals
  (typical_rr: the 2 longest and the 2 shortest dropped, the middle 5 averaged), so a pause, a
  missed or a false beat, or AF's irregular RR does not make one (with 5 RR, AF at 100 bpm
  gave a false tachycardia every half minute). Not the median: in bigeminy the intervals
  alternate short (the PVC's coupling, 0.55-0.7 RR) and long (its compensatory pause), and
  the median of an odd window is one of the two: bigeminy at 85 bpm read as 155 bpm
  (tachycardia), at 50 bpm as 36 (bradycardia). The interquartile mean keeps both kinds;
- tachy: HR > 150 bpm, the same 9-RR interquartile mean;
- pause: an RR interval > 3 s; also > 3 s of readable signal before the first or after the
  last beat at a true edge of the run (an asystole still going on);
- af: over a window of 32 RR intervals (33 beats; the issue asks for at least 30), without
  the premature beats' pairs (a short coupling interval and its compensatory pause:
  drop_ectopic_pairs; a window left with fewer than 16 is not AF), trimmed of its 2 longest
  and 2 shortest intervals (an isolated ectopic, a missed beat): normalized RMSSD
  (RMSSD / mean RR) > 0.10 AND normalized Shannon entropy of the RR histogram (16 bins) > 0.55.

Why these AF numbers: Dash et al. (2009, Ann Biomed Eng) detect AF from RR alone with
RMSSD/mean RR > 0.1 and Shannon entropy > 0.7 over 128-beat windows (trimmed of 8 + 8
outliers); sinus rhythm with ordinary HRV has a beat-to-beat RMSSD of 20-50 ms at RR 0.8-1 s,
i.e. 0.02-0.06, and AF's irregularly irregular RR gives 0.15-0.4. The entropy term is what
keeps regular irregularity out: bigeminy (short-long-short-long) has a high RMSSD but only two
RR values (entropy log 2 / log 16 = 0.25), trigeminy three (0.40). Over 28 kept intervals the
entropy of a truly random RR sequence is biased down from 128-beat values (about 0.75-0.9
measured on uniform and Gaussian RR), hence 0.55, not 0.7.

Onsets and ends, so that an episode starts at the patient's first abnormal beat, not at the
first window that noticed it: rate episodes are trimmed to their first and last qualifying
RR interval; an AF region (the union of its windows) is trimmed to the first and last beat
whose own successive difference |dRR| / mean RR exceeds 0.10 with the median of the next (or
previous) 8 doing so too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.model import Episode, Segment

BRADY_BPM = 40.0
TACHY_BPM = 150.0
RATE_WINDOW = 9  # RR intervals whose interquartile mean gives the rate
PAUSE_S = 3.0
AF_WINDOW = 32  # RR intervals
AF_TRIM = 2  # longest and shortest intervals dropped from each window
AF_NRMSSD = 0.10
AF_ENTROPY = 0.55
AF_BINS = 16
AF_EDGE_RUN = 8
ECTOPIC_EARLY = 0.85  # a premature beat's interval: under this share of the window's median ...
ECTOPIC_PAUSE = 0.15  # ... then a compensatory pause: the pair sums to 2 medians within this share
UNREADABLE_MIN_S = 3.0  # a monitor does not alarm on one bad second

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Run:
    t0: float
    t1: float
    beats: Floats  # capture times, sorted, within [t0, t1]
    start_edge: bool = True
    end_edge: bool = True


def _true_stretches(cond: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Inclusive [first, last] index pairs of each stretch of True."""
    padded = np.concatenate(([False], cond, [False])).astype(np.int8)
    d = np.diff(padded)
    return list(zip(np.nonzero(d == 1)[0].tolist(), (np.nonzero(d == -1)[0] - 1).tolist(), strict=True))


def _rr_stats(rr: Floats) -> dict[str, float]:
    mean = float(np.mean(rr))
    d = np.diff(rr)
    rmssd = float(np.sqrt(np.mean(d * d))) if d.size else 0.0
    return {"hr_bpm": round(60.0 / mean, 1), "rr_mean_ms": round(mean * 1000, 1),
            "rr_cv": round(float(np.std(rr)) / mean, 4), "nrmssd": round(rmssd / mean, 4),
            "n_beats": int(rr.size + 1)}


def typical_rr(rr: Floats) -> Floats:
    """The interquartile mean of RR intervals along the last axis: sorted, a quarter (rounded
    down) dropped from each end, the rest averaged. One value per row of a 2-D array."""
    n = rr.shape[-1]
    k = n // 4
    return np.asarray(np.mean(np.sort(rr, axis=-1)[..., k : n - k], axis=-1), dtype=np.float64)


def _rate_episodes(device_id: str, run: Run, rr: Floats, kind: str) -> list[Episode]:
    b = run.beats
    if rr.size < RATE_WINDOW:
        return []
    hr = 60.0 / typical_rr(np.lib.stride_tricks.sliding_window_view(rr, RATE_WINDOW))
    # hr[k]: the window of intervals k..k+RATE_WINDOW-1
    slow = rr > 60.0 / BRADY_BPM if kind == "brady" else rr < 60.0 / TACHY_BPM
    flagged = hr < BRADY_BPM if kind == "brady" else hr > TACHY_BPM
    out = []
    for k0, k1 in _true_stretches(flagged):
        span = np.nonzero(slow[k0 : k1 + RATE_WINDOW])[0] + k0
        first, last = int(span[0]), int(span[-1])  # the first and last qualifying interval
        ep_rr = rr[first : last + 1]
        ev = _rr_stats(ep_rr)
        ev["hr_bpm"] = round(float(np.min(hr[k0 : k1 + 1]) if kind == "brady"
                                   else np.max(hr[k0 : k1 + 1])), 1)
        is_open = run.end_edge and last + 1 == b.size - 1 and run.t1 - b[-1] < 2 * float(np.max(ep_rr))
        out.append(Episode(device_id, kind, float(b[first]), float(b[last + 1]), bool(is_open), ev))
    return out


def _pause_episodes(device_id: str, run: Run, rr: Floats) -> list[Episode]:
    b = run.beats
    out = [Episode(device_id, "pause", float(b[i]), float(b[i + 1]), False,
                   {"pause_s": round(float(rr[i]), 3)})
           for i in np.nonzero(rr > PAUSE_S)[0].tolist()]
    first = float(b[0]) if b.size else run.t1
    last = float(b[-1]) if b.size else run.t0
    if run.start_edge and b.size and first - run.t0 > PAUSE_S:
        out.insert(0, Episode(device_id, "pause", run.t0, first, False,
                              {"pause_s": round(first - run.t0, 3), "at_run_start": True}))
    if run.end_edge and run.t1 - last > PAUSE_S and (b.size or run.start_edge):
        out.append(Episode(device_id, "pause", last, run.t1, True,
                           {"pause_s": round(run.t1 - last, 3), "no_beat_since": True}))
    return out


def _entropy(x: Floats) -> float:
    counts, _ = np.histogram(x, bins=AF_BINS)
    p = counts[counts > 0] / x.size
    return float(-(p * np.log(p)).sum() / np.log(AF_BINS))


def drop_ectopic_pairs(rr: Floats) -> Floats:
    """The intervals without each premature beat's pair: a short coupling interval followed
    by a compensatory pause, the two together about two ordinary intervals (ECTOPIC_*). A
    patient with PVCs in sinus rhythm has several such pairs in every 32-RR window; trimming
    2 + 2 outliers cannot remove them all, and what is left reads as irregularly irregular
    (a false suspected AF). AF itself keeps its irregularity without them: its short and long
    intervals do not come in compensating pairs."""
    if rr.size < 3:
        return rr
    m = float(np.median(rr))
    keep = np.ones(rr.size, dtype=bool)
    i = 0
    while i < rr.size - 1:
        early, pause = float(rr[i]), float(rr[i + 1])
        if early < ECTOPIC_EARLY * m < pause and abs(early + pause - 2 * m) <= ECTOPIC_PAUSE * 2 * m:
            keep[i] = keep[i + 1] = False
            i += 2
        else:
            i += 1
    return rr[keep]


def af_window_flags(rr: Floats) -> npt.NDArray[np.bool_]:
    """For each window of AF_WINDOW intervals (k..k+AF_WINDOW-1): whether it reads as AF."""
    if rr.size < AF_WINDOW:
        return np.zeros(0, dtype=bool)
    order = np.lib.stride_tricks.sliding_window_view(rr, AF_WINDOW)
    flags = np.zeros(order.shape[0], dtype=bool)
    for k in range(order.shape[0]):
        sinus = drop_ectopic_pairs(order[k])
        if sinus.size < AF_WINDOW // 2:
            continue  # mostly premature beats and their pauses (bigeminy): regular, not AF
        ranked = np.sort(sinus)
        lo, hi = ranked[AF_TRIM], ranked[-AF_TRIM - 1]
        w = sinus[(sinus >= lo) & (sinus <= hi)]  # trimmed, in time order
        d = np.diff(w)
        nrmssd = float(np.sqrt(np.mean(d * d))) / float(np.mean(w))
        flags[k] = nrmssd > AF_NRMSSD and _entropy(w) > AF_ENTROPY
    return flags


def _af_episodes(device_id: str, run: Run, rr: Floats) -> list[Episode]:
    b = run.beats
    flags = af_window_flags(rr)
    out = []
    for k0, k1 in _true_stretches(flags):
        lo, hi = k0, k1 + AF_WINDOW - 1  # intervals covered by the flagged windows
        seg = rr[lo : hi + 1]
        irregular = np.abs(np.diff(seg)) / float(np.mean(seg)) > AF_NRMSSD  # irregular[j]: seg[j]->seg[j+1]
        n = irregular.size
        fwd = [bool(irregular[j]) and np.median(irregular[j : j + AF_EDGE_RUN]) > 0.5 for j in range(n)]
        bwd = [bool(irregular[j]) and np.median(irregular[max(0, j - AF_EDGE_RUN + 1) : j + 1]) > 0.5
               for j in range(n)]
        starts = [j for j in range(n) if fwd[j]]
        ends = [j for j in range(n) if bwd[j]]
        first = lo + (starts[0] if starts else 0)  # interval index
        last = lo + (ends[-1] + 1 if ends else seg.size - 1)
        if last <= first:
            continue
        ev = _rr_stats(rr[first : last + 1])
        ev["entropy"] = round(_entropy(rr[first : last + 1]), 3)
        is_open = run.end_edge and hi == rr.size - 1
        out.append(Episode(device_id, "af", float(b[first]), float(b[last + 1]), bool(is_open), ev))
    return out


def episodes(device_id: str, runs: list[Run]) -> list[Episode]:
    """Every episode each run shows, in onset order within each kind."""
    out: list[Episode] = []
    for run in runs:
        rr = np.diff(run.beats)
        out += _pause_episodes(device_id, run, rr)
        if run.beats.size >= 2:
            out += _rate_episodes(device_id, run, rr, "brady")
            out += _rate_episodes(device_id, run, rr, "tachy")
            out += _af_episodes(device_id, run, rr)
    return out


def unreadable_episodes(device_id: str, segments: list[Segment], latest_t1: float,
                        gap_s: float) -> list[Episode]:
    """Each stretch of contiguous unreadable readings (sorted by t0) at least UNREADABLE_MIN_S
    long as one episode; open when it reaches the device's newest analysed capture."""
    out: list[Episode] = []
    cur: list[Segment] = []

    def flush() -> None:
        if cur and cur[-1].t1 - cur[0].t0 >= UNREADABLE_MIN_S:
            qual = [s.quality for s in cur if s.quality is not None]
            ev = {"readings": len(cur), "lead_off": any(s.lead_off for s in cur),
                  "quality_min": round(min(qual), 3) if qual else None}
            out.append(Episode(device_id, "unreadable", cur[0].t0, cur[-1].t1,
                               cur[-1].t1 >= latest_t1 - 1e-6, ev))
        cur.clear()

    for s in segments:
        if s.readable:
            flush()
            continue
        if cur and (s.t0 - cur[-1].t1 > gap_s or s.strip_id != cur[-1].strip_id):
            flush()
        cur.append(s)
    flush()
    return out
