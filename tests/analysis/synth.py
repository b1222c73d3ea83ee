"""A beat train we control, for the analysis tests: chosen beat times, rendered with neurokit2's
ecgsyn beat shape (STYLE.md: keep neurokit's morphology), cut into readings.

    beats, starts = rhythm(rng, [("sinus", 120, 70), ("brady", 60, 35), ("sinus", 60, 70)])
    x = render(beats, duration_s, fs)
    readings = chunk("hc-0001", x, fs, t0=T0, chunk_s=1.0)          FeedReading values
    store_readings(db, readings)                                   through ingest/store.py
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from ingest.store import SqliteStore
from ingest.store_feed import FeedReading
from ingest.validate import Accepted, validate
from wire import Reading, encode_reading
from wire.topics import ecg_topic

T0 = 1_700_000_000.0
FS = 250
GAIN_UV = 2.5
_PRE_S, _POST_S = 0.30, 0.55  # the beat template around its R peak


@functools.cache
def template(fs: int = FS) -> npt.NDArray[np.float64]:
    """One beat of neurokit2's ecgsyn (60 bpm, the median of 20 beats), R peak at _PRE_S,
    tapered to zero at both ends so that placed beats add without steps."""
    import neurokit2 as nk

    x = np.asarray(nk.ecg_simulate(duration=24, sampling_rate=fs, heart_rate=60, heart_rate_std=0,
                                   random_state=7, method="ecgsyn"), dtype=np.float64)
    pre, post = round(_PRE_S * fs), round(_POST_S * fs)
    high = 0.6 * float(x.max())
    peaks = [i for i in range(2 * fs, len(x) - 2 * fs)
             if x[i] > high and x[i] == x[i - fs // 4 : i + fs // 4].max()]
    beat = np.median([x[p - pre : p + post] for p in peaks[:20]], axis=0)
    beat -= np.linspace(beat[0], beat[-1], beat.size)
    taper = np.ones(beat.size)
    k = round(0.05 * fs)
    taper[:k], taper[-k:] = np.hanning(2 * k)[:k], np.hanning(2 * k)[k:]
    return beat * taper


def rhythm(rng: np.random.Generator,
           parts: list[tuple[str, float, float]]) -> tuple[npt.NDArray[np.float64], list[float]]:
    """Beat times (s from 0) for consecutive parts (kind, seconds, hr), and the beat at which
    each part begins (its first RR starts there: the true onset). sinus/brady/tachy keep RR
    within 2 % of 60/hr; af draws RR uniformly within ±45 % of 60/hr; pause is ONE RR of
    `seconds` (hr ignored)."""
    t = 0.5
    out = [t]
    starts = []
    for kind, seconds, hr in parts:
        starts.append(out[-1])
        end = t + seconds
        if kind == "pause":
            t += seconds
            out.append(t)
            continue
        while True:
            base = 60.0 / hr
            rr = base * rng.uniform(0.55, 1.45) if kind == "af" else base * (1 + 0.02 * rng.standard_normal())
            if t + rr > end:
                break
            t += rr
            out.append(t)
        t = out[-1]
    return np.asarray(out), starts


def render(beats: npt.NDArray[np.float64], duration_s: float, fs: int = FS,
           noise_mv: float = 0.01, seed: int = 0) -> npt.NDArray[np.float64]:
    """The ecgsyn beat template placed at each beat time, plus white noise."""
    n = round(duration_s * fs)
    x = np.zeros(n)
    beat = template(fs)
    pre = round(_PRE_S * fs)
    for b in beats:
        i0 = round(b * fs) - pre
        lo, hi = max(0, i0), min(n, i0 + beat.size)
        if hi > lo:
            x[lo:hi] += beat[lo - i0 : hi - i0]
    return x + np.random.default_rng(seed).normal(0, noise_mv, n)


def chunk(device: str, x_mv: npt.NDArray[np.float64], fs: int = FS, t0: float = T0,
          chunk_s: float = 1.0, boot: int = 1, first_seq: int = 0, strip: bool = False,
          flags: int = 0) -> list[FeedReading]:
    """Readings of chunk_s seconds (rowid = seq + 1); strip=True: ONE strip of all of them."""
    n = round(chunk_s * fs)
    parts = [x_mv[i : i + n] for i in range(0, len(x_mv) - n + 1, n)]
    out = []
    for i, p in enumerate(parts):
        seq = first_seq + i
        counts = np.clip(np.round(p * 1000 / GAIN_UV), -32768, 32767).astype(np.int16)
        out.append(FeedReading(
            rowid=seq + 1, device_id=device, boot_epoch=boot, seq=seq, captured_at=t0 + i * chunk_s,
            stored_at=t0 + i * chunk_s + chunk_s, sample_rate_hz=fs, gain_uv=GAIN_UV,
            strip_id=first_seq + 1 if strip else 0, chunk=i if strip else 0,
            chunks=len(parts) if strip else 1, flags=flags, samples=counts))
    return out


def accepted(r: FeedReading, received_at: float) -> Accepted:
    reading = Reading(r.device_id, r.boot_epoch, r.seq, r.captured_at, r.sample_rate_hz, r.gain_uv,
                      r.samples, flags=r.flags & 0x01, strip_id=r.strip_id, chunk=r.chunk,
                      chunks=r.chunks)
    got = validate(ecg_topic(r.device_id), encode_reading(reading), received_at)
    assert isinstance(got, Accepted), got
    return got


def store_readings(store: SqliteStore, readings: list[FeedReading], batch: int = 50) -> None:
    """Store readings through the real ingest store, `batch` per transaction, in list order."""
    for i in range(0, len(readings), batch):
        part = readings[i : i + batch]
        store.store_batch([accepted(r, r.stored_at) for r in part], [], part[-1].stored_at)


class FakeContext:
    """Stored neighbours from a list (what the ingest store would hold)."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, int, int], FeedReading] = {}

    def add(self, readings: list[FeedReading]) -> None:
        self.stored.update({(r.device_id, r.boot_epoch, r.seq): r for r in readings})

    def device_readings(self, device_id: str, boot_epoch: int, seq_lo: int, seq_hi: int) -> list[FeedReading]:
        return sorted((r for (d, b, s), r in self.stored.items()
                       if d == device_id and b == boot_epoch and seq_lo <= s <= seq_hi), key=lambda r: r.seq)
