"""Mosquitto's password file (hashed by `mosquitto_passwd`) and its ACL, from the identities.

The ACL gives each identity exactly what its role needs and no more; Mosquitto refuses
everything an ACL file does not grant (a subscription it refuses gets reason 0x87, a publish it
refuses is dropped: MQTT 5 clients get a PUBACK with 0x87, MQTT 3.1.1 clients a plain PUBACK).
Each device gets its own lines, not a `pattern` (patterns apply to every user, services too).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from lab.errors import ConfigError
from lab.provision.files import write_private, write_public
from wire.topics import ECG_SUBSCRIPTION, INGEST_STATUS_FILTER, ROOT, ack_topic, ecg_topic, status_topic

INGEST_SYNC_TOPIC = "ecgpipe/ingest/stopping"  # ingest.subscriber.SYNC_TOPIC: its stop's PUBACK

HEADER = """\
# ecgpipe broker ACL, written by `ecgpipe provision` (lab/provision/broker_files.py).
# Mosquitto refuses whatever this file does not grant: anonymous clients are refused at
# CONNECT (allow_anonymous false), and every identity below may touch only its own topics.
"""

SERVICES: dict[str, tuple[str, ...]] = {  # comment lines (#) and grants, in order
    "ingest": (
        "# ingest: reads every device's readings and statuses, confirms each reading to its",
        "# device, and keeps its own retained status (and its Last Will) current (each worker's",
        "# under .../status/<worker> when several share the readings); and a QoS 1",
        "# message to itself whose PUBACK tells it the broker has every ack it sent before stopping",
        f"topic read {ECG_SUBSCRIPTION}",
        f"topic read {ROOT}/+/status",
        f"topic write {ROOT}/+/ack",
        f"topic readwrite {INGEST_STATUS_FILTER}",
        f"topic write {INGEST_SYNC_TOPIC}",
    ),
    "watcher": (
        "# the lab's $SYS watcher: the broker's own counters, nothing of any patient",
        "topic read $SYS/#",
    ),
    "observer": (
        "# `ecgpipe tail`: reads readings and statuses to show them; publishes nothing",
        f"topic read {ECG_SUBSCRIPTION}",
        f"topic read {ROOT}/+/status",
        f"topic read {INGEST_STATUS_FILTER}",
    ),
}


def device_lines(device_id: str) -> tuple[str, ...]:
    return (
        f"user {device_id}",
        f"topic write {ecg_topic(device_id)}",
        f"topic write {status_topic(device_id)}",
        f"topic read {ack_topic(device_id)}",
        f"topic read {INGEST_STATUS_FILTER}",
    )


def render_acl(devices: Iterable[str], services: Iterable[str]) -> str:
    out = [HEADER]
    for name in services:
        lines = SERVICES[name]
        out += [*(c for c in lines if c.startswith("#")), f"user {name}",
                *(g for g in lines if not g.startswith("#")), ""]
    out += ["# each device: publish its own readings and status, read its own acks and the",
            "# ingest service's status (whether to hold readings), nothing else", ""]
    for dev in devices:
        out += [*device_lines(dev), ""]
    return "\n".join(out)


def passwd_binary() -> str:
    found = shutil.which("mosquitto_passwd") or (
        "/usr/bin/mosquitto_passwd" if Path("/usr/bin/mosquitto_passwd").exists() else None)
    if not found:
        raise ConfigError("mosquitto_passwd is not installed: run scripts/setup "
                          "(apt-get install mosquitto)")
    return found


def write_passwd(path: Path, credentials: Iterable[tuple[str, str]]) -> None:
    """Write `user:password` lines (0600) and have mosquitto_passwd hash them in place (-U)."""
    write_private(path, "".join(f"{u}:{p}\n" for u, p in credentials).encode())
    done = subprocess.run([passwd_binary(), "-U", str(path)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        path.unlink(missing_ok=True)  # never leave plaintext passwords behind
        raise ConfigError(f"mosquitto_passwd -U failed: {done.stderr.strip() or done.returncode}")


def write_acl(path: Path, devices: Iterable[str], services: Iterable[str]) -> None:
    write_public(path, render_acl(devices, services).encode())
