"""devices.smallrng.SplitMix: deterministic per seed, uniform on [0, 1), small."""

from __future__ import annotations

import sys

import numpy as np

from devices.smallrng import SplitMix


def test_same_seed_same_sequence_and_other_seeds_differ() -> None:
    a, b, c = SplitMix(7), SplitMix(7), SplitMix(8)
    xs = [a.random() for _ in range(100)]
    assert xs == [b.random() for _ in range(100)]
    assert xs != [c.random() for _ in range(100)]


def test_uniform_on_the_unit_interval() -> None:
    r = SplitMix(2023)
    x = np.array([r.random() for _ in range(200_000)])
    assert x.min() >= 0.0 and x.max() < 1.0
    counts, _ = np.histogram(x, bins=20, range=(0.0, 1.0))
    expected = x.size / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 43.8, chi2  # chi-square, 19 degrees of freedom, p = 0.001
    assert abs(float(np.corrcoef(x[:-1], x[1:])[0, 1])) < 0.01  # successive draws unrelated


def test_it_is_small() -> None:
    import random
    assert sys.getsizeof(SplitMix(1)) < 64 < sys.getsizeof(random.Random(1))
