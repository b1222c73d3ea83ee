"""A process's Prometheus endpoint (docs/metrics.md): its own CollectorRegistry served over HTTP,
and the record that tells the lab where to scrape it.

    server = MetricsServer(registry, "127.0.0.1", 0)   # 0: a free port; MetricsServerError if
    server.write_record(DIR / "ingest" / "metrics.json", name="ingest", at=clock.now())
    ...
    server.close()

Threads: prometheus_client serves on a daemon thread of its own (and a short-lived thread
per scrape). A scrape only reads the registry's metrics, which take their own locks, so the
process's loop never waits for a scrape and never shares anything else with that thread.

The record (written atomically, so a reader never sees half of one):
`{"name", "pid", "host", "port", "url", "at"}`; `at` is the writer's clock (simulated in a
scenario run, as every other state file's times).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from ecgcore.files import write_json_atomic


class MetricsServerError(Exception):
    """The endpoint could not be served (a port taken, a host that does not resolve): one line."""


@dataclass(frozen=True)
class MetricsEndpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"


class MetricsServer:
    """`registry` served on http://host:port/metrics from now until close()."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        if not 0 <= port <= 65_535:
            raise MetricsServerError(f"metrics port {port} is not in 0..65535")
        if not host.strip():
            raise MetricsServerError("metrics host must not be empty")
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:  # EADDRINUSE, EACCES, EADDRNOTAVAIL, or gaierror for the host
            why = exc.strerror or str(exc)
            taken = " (is another process using it?)" if port and "in use" in why else ""
            raise MetricsServerError(f"cannot serve metrics on {host}:{port}: {why}{taken}") from None
        self.endpoint = MetricsEndpoint(host, int(self._httpd.server_address[1]))

    def record(self, name: str, at: float) -> dict[str, Any]:
        ep = self.endpoint
        return {"name": name, "pid": os.getpid(), "host": ep.host, "port": ep.port, "url": ep.url,
                "at": round(at, 3)}

    def write_record(self, path: Path, *, name: str, at: float) -> None:
        """Tell the lab where this endpoint is (atomically; the folder is created if missing)."""
        write_json_atomic(path, self.record(name, at))

    def close(self) -> None:
        """Stop serving and free the port. Idempotent."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
