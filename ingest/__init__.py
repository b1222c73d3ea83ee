"""The ingest service: receive readings over MQTT, validate, store durably and idempotently,
and confirm storage back to the devices.

Modules, one responsibility each:
    validate    pure: (topic, payload) -> Accepted | Quarantined
    store       the SQLite store (schema in docs/architecture.md), one transaction per batch
    acker       pure: BatchResult -> per-device end-to-end ack messages
    subscriber  the only paho import on this side: one MQTT v5 client, manual PUBACK
    service     the main loop: batch -> validate -> commit -> PUBACK -> acks
    store_view  read-only queries the lab runs on ingest.sqlite (its only way into the store)
    store_reading  one stored reading and its duplicates, for `inspect reading` (read-only)
    errors      the one exception hierarchy (IngestError)
"""
