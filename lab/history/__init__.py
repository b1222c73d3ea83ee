"""A run's history: typed events, their loaders, fault windows and the broker's counters."""

from lab.history.events import (
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
    ReadingEvent,
    Stored,
)
from lab.history.load import load_history, read_clinical_events, read_ingest, read_patients
from lab.history.records import broker_samples, parse_device_event, parse_device_events
from lab.history.truth import ClinicalEvent, Patient, TruthSegment, parse_truth
from lab.history.windows import label_windows, pair_faults

__all__ = [
    "Boot", "BrokerAcked", "BrokerSample", "ClinicalEvent", "DeviceEvent", "Duplicate", "Evicted",
    "FaultWindow", "Generated", "History", "IngestAcked", "Key", "Patient", "Published",
    "QuarantinedMessage", "ReadingEvent", "Stored", "TruthSegment",
    "broker_samples", "label_windows", "load_history", "pair_faults", "parse_device_event",
    "parse_device_events", "parse_truth", "read_clinical_events", "read_ingest", "read_patients",
]
