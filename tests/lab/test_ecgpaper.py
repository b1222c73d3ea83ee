"""A reading drawn on ECG paper has the clinical scale: 25 mm/s and 10 mm/mV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lab.report.ecgpaper import MM_PER_INCH, draw_strip


def test_thirty_second_strip_wraps_into_three_ten_second_rows(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg

    rate = 250
    t = np.arange(30 * rate) / rate
    mv = np.where((t % 1.0) < 0.04, 1.2, 0.0)  # a 1.2-mV spike every second
    dpi = 100
    out = draw_strip(mv, rate, tmp_path / "strip.png", title="hc-0001 seq 12", captured_at=1_689_000_000,
                     stored_at=1_689_000_000 + 72 * 3600, dpi=dpi)
    img = mpimg.imread(out)
    h, w = img.shape[:2]
    # 10 s at 25 mm/s = 250 mm per row, plus 2 × 8 mm margins
    assert abs(w - round((250 + 16) / MM_PER_INCH * dpi)) <= 2
    # three rows of 40 mm plus header and margin
    assert abs(h - round((3 * 40 + 14 + 8) / MM_PER_INCH * dpi)) <= 2
    dark = (img[..., :3].mean(axis=2) < 0.3).sum()
    assert dark > 500  # the trace and the text were drawn


def test_empty_trace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-empty one-dimensional"):
        draw_strip(np.zeros(0), 250, tmp_path / "x.png")
