"""Fixtures of the analysis tests: one patient's 7-minute record with an injected bradycardia,
tachycardia, pause and AF episode, built once per session (rendering it takes a moment)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from ingest.store_feed import FeedReading
from tests.analysis.synth import T0, chunk, render, rhythm

PARTS = [("sinus", 60, 70), ("brady", 40, 35), ("sinus", 40, 70), ("tachy", 30, 170), ("sinus", 40, 70),
         ("pause", 4.5, 0), ("sinus", 40, 75), ("af", 90, 90), ("sinus", 50, 70)]
INJECTED = {"brady": 1, "tachy": 3, "pause": 5, "af": 7}  # kind -> index in PARTS


@dataclass(frozen=True)
class Record:
    beats: np.ndarray  # capture times
    onsets: dict[str, float]  # kind -> true onset (capture time)
    ends: dict[str, float]
    readings: list[FeedReading]


@pytest.fixture(scope="session")
def record() -> Record:
    beats, starts = rhythm(np.random.default_rng(3), PARTS)
    readings = chunk("hc-0001", render(beats, float(beats[-1]) + 1.0))
    starts_abs = [T0 + s for s in starts] + [T0 + float(beats[-1])]
    return Record(T0 + beats, {k: starts_abs[i] for k, i in INJECTED.items()},
                  {k: starts_abs[i + 1] for k, i in INJECTED.items()}, readings)
