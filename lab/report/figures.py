"""The outage report's pictures, from a history and the checker's result.

    timeline.png  backlog per tier (device outboxes, broker queue) and ingest rate over time,
                  fault windows shaded and labelled
    gaps.png      each device's seq ranges: stored, lost, buffered, evicted
    strip.png     one reading captured during the outage, on ECG paper, with when it was
                  captured and when it was finally stored
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import ModuleType

import numpy as np

from ecgcore.modes import Delivery
from ingest import store_view
from lab.checker import CheckResult
from lab.history import BrokerAcked, Evicted, Generated, History, IngestAcked, Published, ReadingEvent
from lab.report.ecgpaper import draw_strip
from lab.stack.statedir import StateDir

COLORS = {"stored": "#2e8b57", "lost": "#d62728", "buffered": "#ff9f1c", "evicted": "#7f7f7f"}


def _plt() -> ModuleType:
    """matplotlib.pyplot on the Agg backend, imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def outbox_series(hist: History, delivery: str) -> tuple[np.ndarray, np.ndarray]:
    """The fleet's outbox backlog after every event: +1 when a reading is generated, −1 when
    the delivery mode lets go of it (or it is evicted). Pure."""
    release: type[ReadingEvent] = {Delivery.FIRE_AND_FORGET: Published, Delivery.BROKER_ACK: BrokerAcked,
                                   Delivery.END_TO_END: IngestAcked}[Delivery(delivery)]
    held: set[tuple[str, int, int]] = set()
    ts: list[float] = []
    vs: list[int] = []
    for ev in sorted(hist.device_events, key=lambda e: e.t):
        if isinstance(ev, Generated):
            held.add(ev.key)
        elif isinstance(ev, release | Evicted) and ev.key in held:
            held.discard(ev.key)
        else:
            continue
        ts.append(ev.t)
        vs.append(len(held))
    return np.asarray(ts, dtype=float), np.asarray(vs, dtype=float)


def _t0(hist: History) -> float | None:
    times = [e.t for e in hist.device_events[:1]] + [s.t for s in hist.stored[:1]]
    times += [w.start for w in hist.faults]
    return min(times) if times else None


def timeline(hist: History, result: CheckResult, path: Path, title: str) -> Path | None:
    t0 = _t0(hist)
    if t0 is None:
        return None
    span = max([e.t for e in hist.device_events[-1:]] + [s.t for s in hist.stored[-1:]] + [t0 + 1]) - t0
    unit, scale = ("h", 3600.0) if span > 3 * 3600 else ("s", 1.0)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=110)
    ts, vs = outbox_series(hist, result.delivery)
    if ts.size:
        # the level at 400 evenly spaced instants: every tick adds and releases readings, so
        # drawing each event would fill the plot with the sub-second churn
        grid = np.linspace(ts[0], ts[-1], 400)
        idx = np.searchsorted(ts, grid, side="right") - 1
        ax.step((grid - t0) / scale, np.where(idx >= 0, vs[np.clip(idx, 0, None)], 0), where="post",
                color=COLORS["buffered"], label="device outboxes")
    b = [(s.t, s.queued) for s in hist.broker if s.queued is not None]
    if b:
        base = b[0][1]
        ax.step([(t - t0) / scale for t, _ in b], [max(0.0, v - base) for _, v in b], where="post",
                color="#1f77b4", label="broker queue (stored, not retained; above its first sample)")
    ax.set_xlabel(f"simulated time since start ({unit})")
    ax.set_ylabel("readings held")
    ax2 = ax.twinx()
    if hist.stored:
        st = np.asarray([s.t for s in hist.stored]) - t0
        bins = max(10, min(200, len(hist.stored) // 5))
        counts, edges = np.histogram(st, bins=bins)
        width = (edges[1] - edges[0]) or 1.0
        ax2.plot((edges[:-1] + width / 2) / scale, counts / width, color=COLORS["stored"], lw=1,
                 alpha=0.8, label="ingest rate (readings/s)")
        ax2.set_ylabel("ingest rate (readings per simulated second)")
    top = ax.get_ylim()[1]
    for i, w in enumerate(hist.faults):
        end = (w.end if w.end is not None else t0 + span)
        ax.axvspan((w.start - t0) / scale, (end - t0) / scale, color="#d62728", alpha=0.12)
        # overlapping windows (e.g. a slow line under an outage) get their labels on separate lines
        ax.text((w.start - t0) / scale, top * (0.97 - 0.06 * (i % 4)),
                f" {w.id or w.fault} ({w.fault} {w.target})", va="top", fontsize=8, color="#a01010")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right", fontsize=8)
    t = result.totals
    ax.set_title(f"{title}: generated {t.generated}, stored {t.stored}, buffered {t.buffered}, "
                 f"evicted {t.evicted}, lost {t.lost}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _runs(items: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """Sorted (seq, outcome) pairs → (first, last, outcome) runs of consecutive seqs."""
    runs: list[tuple[int, int, str]] = []
    for seq, kind in items:
        if runs and runs[-1][2] == kind and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq, kind)
        else:
            runs.append((seq, seq, kind))
    return runs


def gaps(result: CheckResult, path: Path, title: str, max_devices: int = 40) -> Path | None:
    per_dev: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for (dev, _boot, seq), o in result.outcomes.items():
        per_dev[dev].append((seq, o.outcome))
    if not per_dev:
        return None
    devs = sorted(per_dev)[:max_devices]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 0.25 * len(devs) + 1.6), dpi=110)
    for row, dev in enumerate(devs):
        for start, end, kind in _runs(sorted(per_dev[dev])):
            ax.broken_barh([(start, end - start + 1)], (row - 0.4, 0.8), color=COLORS.get(kind, "#000"))
    ax.set_yticks(range(len(devs)), devs, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seq")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS.values()]
    ax.legend(handles, list(COLORS), loc="lower right", fontsize=8, ncols=4)
    extra = f" (first {max_devices} of {len(per_dev)} devices)" if len(per_dev) > max_devices else ""
    ax.set_title(f"{title}: seq ranges per device{extra}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def pick_outage_reading(hist: History) -> tuple[str, int, int, float, float] | None:
    """A stored reading captured inside a fault window, the one stored latest after capture;
    else the stored reading with the longest delay. (dev, boot, seq, captured_at, stored_at)"""
    windows = [(w.start, w.end if w.end is not None else float("inf")) for w in hist.faults]
    best: tuple[tuple[bool, float], tuple[str, int, int, float, float]] | None = None
    for s in hist.stored:
        inside = any(a <= s.captured_at <= b for a, b in windows)
        score = (inside, s.t - s.captured_at)
        if best is None or score > best[0]:
            best = (score, (s.dev, s.boot, s.seq, s.captured_at, s.t))
    return best[1] if best else None


def strip(hist: History, sd: StateDir, path: Path, title: str) -> Path | None:
    pick = pick_outage_reading(hist)
    if pick is None:
        return None
    dev, boot, seq, captured_at, stored_at = pick
    reading = store_view.reading_samples(sd.ingest_db, dev, boot, seq)
    if reading is None:
        return None
    return draw_strip(reading.millivolts(), reading.sample_rate_hz, path,
                      title=f"{title}: {dev} boot {boot} seq {seq}",
                      captured_at=captured_at, stored_at=stored_at)


def write_figures(hist: History, result: CheckResult, sd: StateDir, out: Path, title: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = [timeline(hist, result, out / "timeline.png", title), gaps(result, out / "gaps.png", title),
            strip(hist, sd, out / "strip.png", title)]
    return [p for p in made if p is not None]
