"""MQTT topic names. One place, so that devices, ingest and the lab agree."""

from __future__ import annotations

from wire.errors import FieldError
from wire.reading import check_device_id

ROOT = "heartcheck"
ECG_SUBSCRIPTION = f"{ROOT}/+/ecg"
STATUS_SUBSCRIPTION = f"{ROOT}/+/status"
# four levels, so it can never be a device's topic (heartcheck/<id>/<kind>)
INGEST_STATUS_TOPIC = f"{ROOT}/service/ingest/status"
# Every ingest status a device must follow: the single service's (INGEST_STATUS_TOPIC) and, when
# several ingest workers share the readings, each worker's (INGEST_STATUS_TOPIC/<worker>); an
# MQTT filter "a/#" also matches "a" itself.
INGEST_STATUS_FILTER = f"{INGEST_STATUS_TOPIC}/#"
# Ingest workers share one subscription (MQTT shared subscriptions, `$share/<group>/<filter>`):
# the broker hands each reading to one worker of the group.
INGEST_SHARE_GROUP = "ecgpipe-ingest"
_WORKER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def check_worker(name: str) -> str:
    """An ingest worker's name: 1..16 of a-z, 0-9 and '-' (it is part of topics and file names)."""
    if not (1 <= len(name) <= 16 and set(name) <= _WORKER_CHARS):
        raise FieldError(f"worker name {name!r} must be 1-16 characters of a-z, 0-9 and '-'")
    return name


def ingest_status_topic(worker: str | None = None) -> str:
    """Where an ingest process keeps its retained status: the service's topic, or its worker's."""
    return INGEST_STATUS_TOPIC if worker is None else f"{INGEST_STATUS_TOPIC}/{check_worker(worker)}"


def is_ingest_status(topic: str) -> bool:
    return topic == INGEST_STATUS_TOPIC or topic.startswith(f"{INGEST_STATUS_TOPIC}/")


def ecg_subscription(share_group: str | None = None) -> str:
    """The readings' subscription: every worker of `share_group` gets a share of them."""
    return ECG_SUBSCRIPTION if share_group is None else f"$share/{share_group}/{ECG_SUBSCRIPTION}"


def ecg_topic(device_id: str) -> str:
    return f"{ROOT}/{check_device_id(device_id)}/ecg"


def status_topic(device_id: str) -> str:
    return f"{ROOT}/{check_device_id(device_id)}/status"


def ack_topic(device_id: str) -> str:
    return f"{ROOT}/{check_device_id(device_id)}/ack"


def device_from_topic(topic: str) -> str:
    """The device id in `heartcheck/<id>/<kind>`; FieldError if the topic has another shape."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != ROOT:
        raise FieldError(f"topic {topic!r} is not {ROOT}/<device_id>/<kind>")
    return check_device_id(parts[1])
