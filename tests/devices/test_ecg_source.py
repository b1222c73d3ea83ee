"""devices/ecg_source.py: each device's own signal, reachable at any sample, the same every time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import find_peaks

from devices.ecg_source import (
    GAIN_UV,
    RENDER_S,
    EcgStream,
    PatientSource,
    SyntheticSource,
    ecgsyn,
    make_source,
)
from devices.errors import EcgSourceError
from devices.fleet import ecg_cache_dir
from devices.profile import PatientProfile
from devices.templates import LIBRARY_VERSION, library_path, load_library
from tests.devices.xqrs import xqrs_peaks

FS = 250
T0 = 1_796_045_840.0  # a simulated Unix time
N0 = round(T0 * FS)
ROOT = Path(__file__).resolve().parents[2]


def measured_hr(samples: np.ndarray, fs: int = FS) -> float:
    """Heart rate from R waves found by wfdb's XQRS (an independent detector)."""
    peaks = xqrs_peaks(samples, fs)
    assert len(peaks) >= 5, "too few R peaks to measure a heart rate"
    return 60.0 * (len(peaks) - 1) / ((peaks[-1] - peaks[0]) / fs)


def simple_hr(samples: np.ndarray, fs: int = FS) -> float:
    """The synthetic bank's R waves: peaks above 60% of the maximum, 0.25 s apart."""
    x = samples.astype(np.float64)
    peaks, _ = find_peaks(x, height=0.6 * x.max(), distance=int(0.25 * fs))
    assert len(peaks) >= 5, "too few R peaks to measure a heart rate"
    return 60.0 * (len(peaks) - 1) / ((peaks[-1] - peaks[0]) / fs)


@pytest.fixture(scope="module")
def source() -> PatientSource:
    src = make_source("ecgsyn", FS, 0, ecg_cache_dir())
    assert isinstance(src, PatientSource)
    return src


def stream(source: PatientSource, hr: float = 70.0, seed: int = 7, noise: float = 0.01) -> EcgStream:
    return EcgStream.for_profile(PatientProfile(hr, 2.0, noise, seed), source)


@pytest.mark.parametrize("hr", [50.0, 80.0, 110.0])
def test_the_stream_has_the_profile_heart_rate_and_an_ecg_amplitude(source: PatientSource,
                                                                    hr: float) -> None:
    s = stream(source, hr, seed=int(hr))
    thirty = np.concatenate([s.read(N0 + k * FS, FS).samples for k in range(30)])
    assert thirty.dtype == np.int16 and thirty.size == 30 * FS
    assert abs(measured_hr(thirty) - hr) <= 2.0
    assert 150 < thirty.max() < 1200  # an R wave of 0.4..3 mV, in counts of 2.5 uV


def test_samples_are_the_same_in_any_chunking_and_at_random(source: PatientSource) -> None:
    one = stream(source)
    by_second = np.concatenate([one.read(N0 + k * FS, FS).samples for k in range(42)])
    seven = stream(source)
    by_seven = np.concatenate([seven.read(N0 + k * 7 * FS, 7 * FS).samples for k in range(6)])
    assert np.array_equal(by_second, by_seven)
    rng = np.random.default_rng(1)
    fresh = stream(source)  # a new object: what a fleet restart builds
    for start in rng.integers(0, 40 * FS, 20):
        size = int(rng.integers(1, 2 * FS))
        got = fresh.read(N0 + int(start), size).samples
        assert np.array_equal(got, by_second[start:start + size])


def test_no_jump_at_chunk_or_render_block_boundaries(source: PatientSource) -> None:
    s = stream(source, hr=95.0, noise=0.0)
    x = np.concatenate([s.read(N0 + k * FS, FS).samples for k in range(120)]).astype(np.int32)
    steps = np.abs(np.diff(x))
    limit = np.percentile(steps, 99.9)
    chunk_edges = np.arange(FS, x.size, FS) - 1
    block_edges = np.flatnonzero((N0 + np.arange(1, x.size)) % (RENDER_S * FS) == 0)
    assert block_edges.size >= 10
    assert steps[chunk_edges].max() <= limit
    assert steps[block_edges].max() <= limit


def test_two_devices_with_the_same_settings_differ(source: PatientSource) -> None:
    a = stream(source, seed=1).read(N0, 10 * FS).samples
    b = stream(source, seed=2).read(N0, 10 * FS).samples
    assert not np.array_equal(a, b)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.9


def test_next_chunk_reads_on_from_the_position(source: PatientSource) -> None:
    s = stream(source)
    s.seek(N0)
    parts = [s.next_chunk(n) for n in (250, 1, 99, 650)]
    assert s.position == N0 + 1000
    assert np.array_equal(np.concatenate(parts), stream(source).read(N0, 1000).samples)


def test_the_template_library_is_cached_on_disk(source: PatientSource) -> None:
    assert source.library.normal.shape[0] >= 8
    path = library_path(ecg_cache_dir())
    assert path.is_file() and f"-v{LIBRARY_VERSION}-" in path.name
    assert load_library(ecg_cache_dir()) is source.library  # one load per process


def test_the_synthetic_source_keeps_its_rate_and_random_access() -> None:
    src = SyntheticSource(FS, 1)
    s = EcgStream.for_profile(PatientProfile(75.0, 2.0, 0.02, 9), src)
    x = s.read(N0, 20 * FS).samples
    assert abs(simple_hr(x) - 75.0) <= 3.0
    again = EcgStream.for_profile(PatientProfile(75.0, 2.0, 0.02, 9), src)
    assert np.array_equal(np.concatenate([again.read(N0 + k * FS, FS).samples for k in range(20)]), x)
    bank = src.bank(75.0, 2.0)
    assert abs(float(bank[0]) - float(bank[-1])) <= np.abs(np.diff(bank)).max()
    assert x.max() * GAIN_UV / 1000 < 2.0


def test_ecgsyn_leaves_numpy_global_random_state_alone() -> None:
    # the legacy global state is the subject of this test, so the legacy calls are meant
    np.random.seed(1234)  # noqa: NPY002 -- the global state under test
    before = np.random.get_state()  # noqa: NPY002 -- the global state under test
    ecgsyn(3.0, FS, 70.0, 1.0, random_state=5)
    after = np.random.get_state()  # noqa: NPY002 -- the global state under test
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_importing_the_fleet_does_not_import_neurokit2() -> None:
    code = ("import sys, devices.fleet, devices.ecg_source, devices.catalogue, devices.__main__; "
            "sys.exit(1 if 'neurokit2' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_make_source_rejects_unknown_kinds() -> None:
    with pytest.raises(EcgSourceError):
        make_source("simple", FS, 0)
