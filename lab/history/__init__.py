"""A run's history: typed events, the loaders that read them from a state dir, fault windows and the broker's counters."""

from lab.history.load import (
    Boot,
    BrokerAcked,
    BrokerSample,
    DeviceEvent,
    Duplicate,
    Evicted,
    FaultWindow,
    Generated,
    History,
    IngestAcked,
    Key,
    Published,
    QuarantinedMessage,
    Stored,
    broker_samples,
    label_windows,
    load_history,
    pair_faults,
    parse_device_event,
    parse_device_events,
)

__all__ = [
    "Boot", "BrokerAcked", "BrokerSample", "DeviceEvent", "Duplicate", "Evicted", "FaultWindow",
    "Generated", "History", "IngestAcked", "Key", "Published", "QuarantinedMessage", "Stored",
    "broker_samples", "label_windows", "load_history", "pair_faults", "parse_device_event",
    "parse_device_events",
]
