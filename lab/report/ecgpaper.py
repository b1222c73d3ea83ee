"""Draw a reading on standard ECG paper: 25 mm/s, 10 mm/mV, 1-mm and 5-mm grid.

The figure is sized in real millimetres (1 inch = 25.4 mm), so printed at 100% it has the
true clinical scale. Long recordings wrap into rows of `row_seconds` (10 s = 250 mm).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

MM_PER_S = 25.0
MM_PER_MV = 10.0
MM_PER_INCH = 25.4
PAPER = "#fff5f5"
MINOR = "#f4b6b6"
MAJOR = "#e06c6c"
TRACE = "#111111"


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _paper(ax: Any, row_w_mm: float, row_h_mm: float) -> None:
    """One row's paper: 1-mm and 5-mm grid, no ticks, no frame."""
    ax.set_facecolor(PAPER)
    ax.set_xlim(0, row_w_mm)
    ax.set_ylim(-row_h_mm / 2, row_h_mm / 2)
    for x in np.arange(0, row_w_mm + 0.01, 1.0):
        ax.axvline(x, color=MAJOR if round(x) % 5 == 0 else MINOR, lw=0.6 if round(x) % 5 == 0 else 0.25)
    for y in np.arange(-row_h_mm / 2, row_h_mm / 2 + 0.01, 1.0):
        ax.axhline(y, color=MAJOR if round(y) % 5 == 0 else MINOR, lw=0.6 if round(y) % 5 == 0 else 0.25)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _caption(title: str, captured_at: float | None, stored_at: float | None) -> str:
    lines = [title] if title else []
    facts = "25 mm/s, 10 mm/mV"
    if captured_at is not None:
        facts += f"   captured {_iso(captured_at)}"
    if stored_at is not None:
        facts += f"   stored {_iso(stored_at)}"
        if captured_at is not None:
            delay = stored_at - captured_at
            facts += f"   ({delay / 3600:.1f} h later)" if delay >= 3600 else f"   ({delay:.1f} s later)"
    lines.append(facts)
    return "\n".join(lines)


def draw_strip(millivolts: np.ndarray, sample_rate_hz: int, path: Path, *, title: str = "",
               captured_at: float | None = None, stored_at: float | None = None,
               row_seconds: float = 10.0, row_mv: float = 4.0, dpi: int = 150,
               head_mm: float = 14.0, beats: tuple[int, ...] = ()) -> Path:
    """Write a PNG of the trace on ECG paper and return its path. head_mm: the height above
    the paper for the caption (14 mm holds two lines; give about 4 mm more a line). beats:
    sample indices marked with a ^ under the top of the row (detected beats)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mv = np.asarray(millivolts, dtype=float)
    if mv.ndim != 1 or mv.size == 0:
        raise ValueError("draw_strip needs a non-empty one-dimensional trace")
    duration = mv.size / sample_rate_hz
    rows = max(1, int(np.ceil(duration / row_seconds - 1e-9)))
    row_w_mm = row_seconds * MM_PER_S
    row_h_mm = row_mv * MM_PER_MV
    margin_mm = 8.0
    width_mm = row_w_mm + 2 * margin_mm
    height_mm = rows * row_h_mm + head_mm + margin_mm
    fig = plt.figure(figsize=(width_mm / MM_PER_INCH, height_mm / MM_PER_INCH), dpi=dpi)
    fig.patch.set_facecolor("white")
    t = np.arange(mv.size) / sample_rate_hz
    baseline = float(np.median(mv))
    for r in range(rows):
        bottom_mm = margin_mm + (rows - 1 - r) * row_h_mm
        ax = fig.add_axes((margin_mm / width_mm, bottom_mm / height_mm, row_w_mm / width_mm,
                           row_h_mm / height_mm))
        _paper(ax, row_w_mm, row_h_mm)
        sel = (t >= r * row_seconds) & (t < (r + 1) * row_seconds)
        x_mm = (t[sel] - r * row_seconds) * MM_PER_S
        y_mm = np.clip((mv[sel] - baseline) * MM_PER_MV, -row_h_mm / 2, row_h_mm / 2)
        ax.plot(x_mm, y_mm, color=TRACE, lw=0.8)
        marks = [b / sample_rate_hz - r * row_seconds for b in beats
                 if r * row_seconds <= b / sample_rate_hz < (r + 1) * row_seconds]
        if marks:
            ax.plot(np.asarray(marks) * MM_PER_S, np.full(len(marks), row_h_mm / 2 - 3), linestyle="none",
                    marker="^", markersize=3, color="#1f4e9c")
        # 1-mV calibration pulse at the start of each row: 10 mm tall, 0.2 s wide
        ax.plot([0.5, 0.5, 5.5, 5.5], [-5, 5, 5, -5], color=TRACE, lw=0.8)
        span = f"{r * row_seconds:.0f}-{min(duration, (r + 1) * row_seconds):.0f} s"
        ax.text(row_w_mm - 1, -row_h_mm / 2 + 1, span, ha="right", va="bottom", fontsize=6, color="#444")
    fig.text(margin_mm / width_mm, 1 - 3 / height_mm, _caption(title, captured_at, stored_at),
             va="top", ha="left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)
    return path
