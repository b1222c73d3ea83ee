"""Exceptions of the ingest package.

    IngestError                 every ingest failure; the CLI reports it as one line
    ├── ConfigError             a bad argument or setting (port out of range, empty client id ...)
    ├── BrokerError             the MQTT side: paho errors, translated where they enter
    │   ├── ConnectError        the client could not be set up or connected
    │   └── PublishError        paho refused an ack outright (not "queued while offline")
    └── StoreError              the store failed: open, schema, insert or commit
        ├── SchemaError         an existing store has tables that differ from the contract
        └── StoreUnavailableError    the store's server cannot be reached now (PostgreSQL down or
                                restarting): nothing was committed, the same batch may be retried

Bad input is never an exception here: validate() turns it into a Quarantined value.
"""


class IngestError(Exception):
    """Base of every error raised by the ingest package."""


class ConfigError(IngestError):
    pass


class BrokerError(IngestError):
    pass


class ConnectError(BrokerError):
    pass


class PublishError(BrokerError):
    pass


class StoreError(IngestError):
    pass


class SchemaError(StoreError):
    pass


class StoreUnavailableError(StoreError):
    pass
