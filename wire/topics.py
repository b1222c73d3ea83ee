"""MQTT topic names. One place, so that devices, ingest and the lab agree."""

from __future__ import annotations

from wire.errors import FieldError
from wire.reading import check_device_id

ROOT = "heartcheck"
ECG_SUBSCRIPTION = f"{ROOT}/+/ecg"
STATUS_SUBSCRIPTION = f"{ROOT}/+/status"
# four levels, so it can never be a device's topic (heartcheck/<id>/<kind>)
INGEST_STATUS_TOPIC = f"{ROOT}/service/ingest/status"


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
