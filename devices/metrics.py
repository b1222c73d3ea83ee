"""A fleet process's Prometheus metrics (docs/metrics.md), in a CollectorRegistry of its own.

The fleet samples itself about once a real second, when it writes devices.json
(`Fleet.step`): `sample(FleetSample)` sets the gauges and moves each counter by what its
total grew since the last sample. Nothing is counted on the loop's hot path. Every series
carries the label `fleet`: the process's name, `fleet`, or `fleet-K` for slice K of a fleet
in several processes (`--procs N`), each of which serves its own endpoint.

The counters count this process's life (they start at 0 when it starts, as Prometheus
expects of a counter); the outbox gauge is what the outbox holds, readings buffered by
earlier runs included.

Thread safety: prometheus_client's metrics take their own locks; the HTTP server's thread
only reads them. `sample` runs on the fleet's loop thread only.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

PREFIX = "ecgpipe_fleet_"


@dataclass(frozen=True)
class FleetSample:
    """A fleet process's state and running totals at one moment."""

    devices: int  # devices this process drives
    connected: int  # of them, connected to the broker now
    outbox: int  # readings buffered in their outboxes
    evicted: int  # readings evicted from their outboxes since this process started
    generated: int  # readings generated since this process started
    published_live: int  # readings published as they were generated
    published_backlog: int  # readings published again or late, from the outbox (re-sends too)


class FleetMetrics:
    """The fleet process's metrics; `registry` is what its endpoint serves."""

    def __init__(self, fleet: str = "fleet") -> None:
        self.fleet = fleet
        r = self.registry = CollectorRegistry()
        f = ["fleet"]
        self.devices = Gauge(PREFIX + "devices", "Devices this fleet process drives",
                             f, registry=r).labels(fleet)
        self.connected = Gauge(PREFIX + "devices_connected", "Devices connected to the broker now",
                               f, registry=r).labels(fleet)
        self.outbox = Gauge(PREFIX + "outbox_readings", "Readings buffered in the devices' outboxes",
                            f, registry=r).labels(fleet)
        self.evicted = Counter(PREFIX + "outbox_evicted", "Readings evicted from a full outbox",
                               f, registry=r).labels(fleet)
        self.generated = Counter(PREFIX + "readings_generated",
                                 "Readings generated (committed to the outbox)", f, registry=r).labels(fleet)
        published = Counter(PREFIX + "readings_published",
                            "Readings handed to MQTT: kind live (as generated) or backlog (from the"
                            " outbox, re-sends included)", [*f, "kind"], registry=r)
        self.published_live = published.labels(fleet, "live")
        self.published_backlog = published.labels(fleet, "backlog")
        self._last = FleetSample(0, 0, 0, 0, 0, 0, 0)

    def sample(self, now: FleetSample) -> None:
        """Set the gauges; move each counter by its total's growth since the last sample."""
        self.devices.set(now.devices)
        self.connected.set(now.connected)
        self.outbox.set(now.outbox)
        last = self._last
        for counter, grew in ((self.evicted, now.evicted - last.evicted),
                              (self.generated, now.generated - last.generated),
                              (self.published_live, now.published_live - last.published_live),
                              (self.published_backlog, now.published_backlog - last.published_backlog)):
            if grew > 0:
                counter.inc(grew)
        self._last = now
