"""Network faults as plain data: what the CLI asks a proxy for, and what the proxy does at an instant.

A `LinkFault` is one command for one link (the control file `proxy/<link>.json` holds exactly one):

    cut        reset every connection and refuse new ones
    blackhole  keep connections open, drop every byte both ways (only keepalives notice)
    slow       delay each chunk by latency ± jitter (order kept), and/or cap bytes/s each way
    flap       cut for `down_s`, healthy for `up_s`, again and again (starting with down)
    heal       clean forwarding

Durations and rates are in simulated units (seconds, bytes per second); the proxy turns them
into real time with its clock. `for_s` (None = until healed) ends a fault by itself.

`Effect` is what a link does right now. `effect_at(fault, elapsed)` is a pure function of the
fault and the simulated seconds since it was applied, so flapping and expiry are tested
without a network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from lab.errors import ConfigError
from lab.units import format_duration, format_rate

KINDS = ("cut", "blackhole", "slow", "flap", "heal")

CLEAN, CUT, BLACKHOLE = "clean", "cut", "blackhole"


@dataclass(frozen=True)
class LinkFault:
    kind: str
    seq: int = 0
    for_s: float | None = None
    latency_s: float = 0.0
    jitter_s: float = 0.0
    bandwidth_bytes_s: float | None = None  # bytes per second, each direction, each connection
    up_s: float = 0.0
    down_s: float = 0.0
    issued_at: float | None = None
    # one fault over several links (a NATS node's partition: its pairs' route proxies): what the
    # history calls it, on what target, and whether this link's proxy is the one that records it
    record_as: str | None = None
    record_target: str | None = None
    record: bool = True
    record_node: str | None = None  # the node a partition of nats-leader cut off

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown fault {self.kind!r}; use one of {', '.join(KINDS)}")
        for name in ("latency_s", "jitter_s", "up_s", "down_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number ≥ 0, got {value!r}")
        if self.for_s is not None and not (math.isfinite(self.for_s) and self.for_s > 0):
            raise ConfigError(f"--for must be more than 0, got {self.for_s!r}")
        if self.bandwidth_bytes_s is not None and not self.bandwidth_bytes_s >= 1:
            raise ConfigError(f"bandwidth must be at least 1 byte/s, got {self.bandwidth_bytes_s!r}")
        if self.kind == "slow" and not (self.latency_s or self.jitter_s or self.bandwidth_bytes_s):
            raise ConfigError("slow needs --latency, --jitter or --bandwidth")
        if self.kind == "flap" and not (self.up_s > 0 and self.down_s > 0):
            raise ConfigError("flap needs --up and --down, both more than 0")
        if self.kind == "heal" and self.for_s is not None:
            raise ConfigError("heal takes no --for")
        for name in ("record_as", "record_target", "record_node"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")

    @property
    def params(self) -> dict[str, Any]:
        """The parameters that matter for this kind (for history records and messages)."""
        keys = {"slow": ("latency_s", "jitter_s", "bandwidth_bytes_s"), "flap": ("up_s", "down_s")}
        return {k: getattr(self, k) for k in keys.get(self.kind, ())}

    def slowness(self) -> str:
        """'latency 200ms ± 50ms, bandwidth 64kbps each way' (slow faults)."""
        parts = []
        if self.latency_s or self.jitter_s:
            parts.append(f"latency {format_duration(self.latency_s) if self.latency_s else '0ms'}"
                         + (f" ± {format_duration(self.jitter_s)}" if self.jitter_s else ""))
        if self.bandwidth_bytes_s is not None:
            parts.append(f"bandwidth {format_rate(self.bandwidth_bytes_s)} each way")
        return ", ".join(parts)

    def describe(self) -> str:
        if self.kind == "slow":
            text = f"slow ({self.slowness()})"
        elif self.kind == "flap":
            text = f"flap (down {format_duration(self.down_s)}, up {format_duration(self.up_s)})"
        else:
            text = self.kind
        return text + (f" for {format_duration(self.for_s)}" if self.for_s else "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Any) -> LinkFault:
        if not isinstance(doc, dict) or "kind" not in doc:
            raise ConfigError(f"a fault document needs a 'kind', got {doc!r}")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in doc.items() if k in known})
        except TypeError as exc:
            raise ConfigError(f"bad fault document {doc!r}: {exc}") from exc


@dataclass(frozen=True)
class Effect:
    """What a link does at one instant."""

    mode: str = CLEAN  # clean | cut | blackhole
    latency_s: float = 0.0
    jitter_s: float = 0.0
    bandwidth_bytes_s: float | None = None
    phase: str | None = None  # flap only: "down" or "up"


HEALTHY = Effect()


def expired(fault: LinkFault, elapsed_s: float) -> bool:
    return fault.for_s is not None and elapsed_s >= fault.for_s


def effect_at(fault: LinkFault | None, elapsed_s: float) -> Effect:
    """The effect of `fault`, applied `elapsed_s` simulated seconds ago."""
    if fault is None or fault.kind == "heal" or expired(fault, elapsed_s):
        return HEALTHY
    if fault.kind == "cut":
        return Effect(mode=CUT)
    if fault.kind == "blackhole":
        return Effect(mode=BLACKHOLE)
    if fault.kind == "slow":
        return Effect(latency_s=fault.latency_s, jitter_s=fault.jitter_s,
                      bandwidth_bytes_s=fault.bandwidth_bytes_s)
    down = (elapsed_s % (fault.down_s + fault.up_s)) < fault.down_s
    return Effect(mode=CUT, phase="down") if down else Effect(phase="up")


def next_change(fault: LinkFault | None, elapsed_s: float) -> float | None:
    """Simulated seconds (since the fault began) of the next instant its effect changes, or None."""
    if fault is None or fault.kind == "heal" or expired(fault, elapsed_s):
        return None
    candidates = [] if fault.for_s is None else [fault.for_s]
    if fault.kind == "flap":
        period = fault.down_s + fault.up_s
        start = elapsed_s - elapsed_s % period
        boundary = start + fault.down_s if elapsed_s - start < fault.down_s else start + period
        candidates.append(boundary)
    return min(candidates) if candidates else None
