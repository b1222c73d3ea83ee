"""The Reading value: one chunk of single-lead ECG from one device."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from wire.errors import FieldError

FLAG_BACKLOG = 0x01  # sent from the outbox backlog rather than live
FLAG_SIGNED = 0x02  # a signature follows the samples (wire/signing.py)
FLAG_LEAD_OFF = 0x04  # an electrode was off for part of the chunk: a flat or saturated stretch
KNOWN_FLAGS = FLAG_BACKLOG | FLAG_SIGNED | FLAG_LEAD_OFF

DEVICE_ID_RE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")  # \Z: "$" would let a trailing newline in
MAX_SAMPLES = 32_768  # a 30-s strip at 1 kHz fits
MAX_SAMPLE_RATE = 2_000
U32 = 2**32


def check_fields(*, boot_epoch: int, seq: int, strip_id: int, sample_rate_hz: int, gain_uv: float,
                 captured_at: float, chunk: int, chunks: int, flags: int, n_samples: int,
                 signature_len: int) -> None:
    """Every field rule of a Reading but the device id's and the samples' type, in one place:
    Reading.__post_init__ and wire.codec.decode_fields both call it."""
    for name, value, hi in (("boot_epoch", boot_epoch, U32), ("seq", seq, U32), ("strip_id", strip_id, U32)):
        if not isinstance(value, int) or not 0 <= value < hi:
            raise FieldError(f"{name}={value!r} must be an integer in [0, {hi})")
    if not isinstance(sample_rate_hz, int) or not 1 <= sample_rate_hz <= MAX_SAMPLE_RATE:
        raise FieldError(f"sample_rate_hz={sample_rate_hz!r} must be in [1, {MAX_SAMPLE_RATE}]")
    if not (gain_uv > 0 and math.isfinite(gain_uv)):
        raise FieldError(f"gain_uv={gain_uv!r} must be a positive finite number")
    if not math.isfinite(captured_at) or captured_at < 0:
        raise FieldError(f"captured_at={captured_at!r} must be a non-negative time")
    if not 0 <= chunk < chunks <= 65_535:
        raise FieldError(f"chunk {chunk} of {chunks} is out of range")
    if flags & ~KNOWN_FLAGS:
        raise FieldError(f"unknown flag bits {flags:#04x}")
    if not 1 <= n_samples <= MAX_SAMPLES:
        raise FieldError(f"{n_samples} samples; a reading carries 1..{MAX_SAMPLES}")
    if signature_len > 1024:
        raise FieldError("signature longer than 1024 bytes")


def check_device_id(device_id: str) -> str:
    if not isinstance(device_id, str) or not DEVICE_ID_RE.match(device_id):
        raise FieldError(f"device id {device_id!r} must be 1-64 characters of [A-Za-z0-9_-]")
    return device_id


@dataclass(frozen=True, eq=False)
class Reading:
    """One reading. Its identity is (device_id, boot_epoch, seq).

    captured_at is the capture time of the first sample, in seconds since the Unix epoch
    (of the injected clock); it travels as whole microseconds.
    samples are int16 counts; multiply by gain_uv to get microvolts.
    strip_id/chunk/chunks name the recording a chunk belongs to (0/0/1 for continuous mode).
    """

    device_id: str
    boot_epoch: int
    seq: int
    captured_at: float
    sample_rate_hz: int
    gain_uv: float
    samples: np.ndarray
    flags: int = 0
    strip_id: int = 0
    chunk: int = 0
    chunks: int = 1
    signature: bytes = field(default=b"")

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        samples = np.asarray(self.samples)
        if samples.ndim != 1 or samples.dtype != np.int16:
            raise FieldError("samples must be a one-dimensional int16 array")
        check_fields(boot_epoch=self.boot_epoch, seq=self.seq, strip_id=self.strip_id,
                     sample_rate_hz=self.sample_rate_hz, gain_uv=self.gain_uv, captured_at=self.captured_at,
                     chunk=self.chunk, chunks=self.chunks, flags=self.flags, n_samples=samples.size,
                     signature_len=len(self.signature))
        object.__setattr__(self, "samples", samples)
        signed = FLAG_SIGNED if self.signature else 0
        object.__setattr__(self, "flags", (self.flags & ~FLAG_SIGNED) | signed)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.device_id, self.boot_epoch, self.seq)

    @property
    def backlog(self) -> bool:
        return bool(self.flags & FLAG_BACKLOG)

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate_hz

    def millivolts(self) -> np.ndarray:
        return self.samples.astype(np.float64) * (self.gain_uv / 1000.0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reading):
            return NotImplemented
        return (
            self.device_id == other.device_id
            and self.boot_epoch == other.boot_epoch
            and self.seq == other.seq
            and round(self.captured_at * 1e6) == round(other.captured_at * 1e6)
            and self.sample_rate_hz == other.sample_rate_hz
            and np.float32(self.gain_uv) == np.float32(other.gain_uv)
            and self.flags == other.flags
            and self.strip_id == other.strip_id
            and self.chunk == other.chunk
            and self.chunks == other.chunks
            and self.signature == other.signature
            and np.array_equal(self.samples, other.samples)
        )

    # equality compares the samples (a numpy array, unhashable), so a Reading is not hashable;
    # typeshed declares object.__hash__ as a method, which mypy will not let None replace
    __hash__ = None  # type: ignore[assignment]
