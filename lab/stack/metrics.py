"""A stack's Prometheus endpoints (docs/metrics.md): what the launcher passes ingest and the
fleet, and where each process said it serves.

`ecgpipe up` (and every scenario run, through it) starts each ingest process and the fleet
with METRICS_ARGS: each binds a free port on 127.0.0.1 itself (so no port can be taken
between a pick and a bind) and records it atomically:

    ingest/metrics.json     ingest/metrics-K.json   (worker K: component ingest-K)
    fleet/metrics.json      fleet/metrics-K.json    (slice K of `up --fleet-procs N`)

each `{"name", "pid", "host", "port", "url", "at"}` (ecgcore/metrics_http.py). A record stays
after its process ends (the state dir is kept for inspection): `live` says whether the pid
that wrote it still runs. `ecgpipe status` shows them under `metrics`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ecgcore.files import JsonFileError, load_json

METRICS_HOST = "127.0.0.1"
METRICS_ARGS = ("--metrics-host", METRICS_HOST, "--metrics-port", "0")  # 0: each picks a free port
_RECORD = re.compile(r"metrics(-[0-9a-z-]{1,16})?\.json")
_FIELDS = ("pid", "host", "port", "url", "at")


def metrics_records(root: Path) -> dict[str, dict[str, Any]]:
    """Every endpoint recorded under state dir `root`, by name (`ingest`, `ingest-2`, `fleet`,
    `fleet-1`, ...): its record's fields and `live`; a damaged record as {"error": ...}."""
    found: dict[str, dict[str, Any]] = {}
    for folder in ("ingest", "fleet"):
        try:
            paths = sorted((root / folder).iterdir())
        except OSError:  # no such folder yet, or not a folder
            continue
        for path in paths:
            m = _RECORD.fullmatch(path.name)
            if m:
                found[folder + (m.group(1) or "")] = _record(path)
    return dict(sorted(found.items(), key=lambda kv: _order(kv[0])))


def _record(path: Path) -> dict[str, Any]:
    try:
        doc = load_json(path)
    except JsonFileError as exc:
        return {"error": str(exc), "live": False}
    if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int):
        return {"error": f"{path} is damaged: not a metrics record", "live": False}
    out = {k: doc.get(k) for k in _FIELDS}
    out["live"] = _alive(doc["pid"])
    return out


def _alive(pid: int) -> bool:
    """Whether `pid` runs (or is frozen): not gone and not a zombie."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _order(name: str) -> tuple[bool, int, str]:
    """ingest, ingest-2, ingest-10 (the components' order), then the fleet's."""
    base, _, k = name.partition("-")
    return base == "fleet", -1 if not k else int(k) if k.isdigit() else 1 << 20, k
